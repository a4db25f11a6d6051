//! Native test kit: fakes of what the host hands a plugin (a request, backends with their
//! signals, retry contexts, outcomes, the clock) and readers of what a plugin answers, so a
//! plugin's logic is unit-tested with plain `cargo test`, no Wasm and no host.
//!
//! ```
//! use lbx_guest::Router;
//! use lbx_guest::testkit::{FakeRequest, backend, picked, retry};
//! # #[derive(Default)] struct MyRouter;
//! # impl Router for MyRouter {
//! #     fn init(c: &str) -> Result<Self, String> { lbx_guest::init_default(c) }
//! #     fn choose(&mut self, _: &dyn lbx_guest::Request, b: &lbx_guest::Backends,
//! #               r: &lbx_guest::RetryContext) -> lbx_guest::Decision {
//! #         lbx_guest::Candidates::new(b, r).nth(0).map_or_else(lbx_guest::no_opinion, lbx_guest::pick)
//! #     }
//! # }
//!
//! let mut router = MyRouter::init("{}").unwrap();
//! let req = FakeRequest::get("/cart").cookie("session", "abc").client("10.0.0.1:1234");
//! // Backend 1 is down; backend 0 already failed this request.
//! let backends = lbx_guest::Backends::from([backend(true, 0), backend(false, 0), backend(true, 7)]);
//! assert_eq!(picked(&router.choose(&req, &backends, &retry(&[0]))), Some(2));
//! ```
//!
//! What there is, by what it fakes or reads:
//!
//! - the request: [`FakeRequest`] (method, target, headers, cookies, client, body prefix);
//! - the backends: [`backend`], [`all_healthy`], [`loads`], [`weights`], [`latencies`], and on
//!   [`Backends`](crate::Backends) [`with_signals`](crate::Backends::with_signals) and
//!   [`scraped`](crate::Backends::scraped); their identities: [`backend_info`], [`labeled`];
//! - the attempt: [`first_attempt`], [`retry`];
//! - the answer: [`picked`], [`expect_pick`], [`attempt_order`], [`upstream_header`],
//!   [`downstream_header`];
//! - feedback: [`answered`], [`failed`], [`outcome_of`], [`deliver`]; time: [`advance_clock`].

mod attempts;
mod backends;
mod feedback;
mod request;

pub use attempts::{
    PickView, attempt_order, downstream_header, expect_pick, first_attempt, picked, rejected,
    retry, upstream_header,
};
pub use backends::{all_healthy, backend, backend_info, labeled, latencies, loads, weights};
pub use feedback::{advance_clock, answered, deliver, failed, outcome_of};
pub use request::FakeRequest;
