//! SDK for writing lbx routing plugins in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2` that implements the `router`
//! interface of `wit/router.wit` (lbx:router@0.2.0). With this crate a plugin author writes
//! plain Rust:
//!
//! 1. implement [`Router`] for a type that holds the plugin's state;
//! 2. call [`export_router!`] once with that type;
//! 3. unit-test the logic natively with [`testkit`] (`cargo test`, no Wasm needed).
//!
//! The per-request call carries numbers only: the [`Backends`] (each backend's
//! [`BackendStats`], which cross the boundary as one flat list of `u32`, see
//! [`unflatten_stats`], and the backend signals lbx scrapes, with their age) and a
//! [`RetryContext`]. Strings such as headers, and the body's first bytes, are fetched from the
//! host on demand through [`Request`], so a plugin that never reads one never pays for it.
//!
//! What a plugin may add, each costing nothing to those that do not use it:
//!
//! - **options on a pick**, chained on [`pick`]: ranked [`fallbacks`](Decision::fallbacks)
//!   tried on a retry without calling `choose` again, statuses to [`retry_on`](Decision::retry_on),
//!   a path [`rewrite`](Decision::rewrite), a [`tag`](Decision::tag) handed back in the outcome,
//!   headers;
//! - **outcome feedback**: set [`Router::OUTCOMES`] and [`Router::on_outcome`] hears how each
//!   attempt went ([`Outcome`]: status, [`Fault`], time to first byte, ...);
//! - **backend signals**: [`Backends::signal`] and [`Backends::signal_slot`];
//! - **the body prefix**: [`Request::body_prefix`], with [`json_string_field`] to read a JSON
//!   field such as `model` from it;
//! - **a clock**: [`now_us`], for ageing the plugin's own state.
//!
//! # Example
//!
//! A complete plugin that sends `/admin` requests to backend 0 and round-robins the rest over
//! healthy backends, avoiding backends that already failed this request:
//!
//! ```
//! use lbx_guest::{Backends, Candidates, Decision, Request, RetryContext, Router};
//!
//! #[derive(Default)]
//! pub struct AdminFirst {
//!     next: u64,
//! }
//!
//! impl Router for AdminFirst {
//!     fn init(config: &str) -> Result<Self, String> {
//!         // Accepts only an empty configuration (`{}`).
//!         lbx_guest::init_default(config)
//!     }
//!
//!     fn choose(&mut self, req: &dyn Request, backends: &Backends, retry: &RetryContext) -> Decision {
//!         if req.path().starts_with("/admin") {
//!             return lbx_guest::pick(0);
//!         }
//!         let candidates = Candidates::new(backends, retry);
//!         let count = candidates.count();
//!         if count == 0 {
//!             return lbx_guest::no_opinion();
//!         }
//!         let nth = (self.next % count as u64) as usize;
//!         self.next = self.next.wrapping_add(1);
//!         candidates.nth(nth).map_or_else(lbx_guest::no_opinion, lbx_guest::pick)
//!     }
//! }
//!
//! // Generates the component exports on wasm32; does nothing natively.
//! lbx_guest::export_router!(AdminFirst);
//!
//! // Natively, test the logic with the test kit:
//! use lbx_guest::testkit::{FakeRequest, all_healthy, first_attempt, picked};
//!
//! let mut router = AdminFirst::init("{}").unwrap();
//! let backends = all_healthy(3);
//! let admin = FakeRequest::get("/admin/users");
//! let home = FakeRequest::get("/");
//! assert_eq!(picked(&router.choose(&admin, &backends, &first_attempt())), Some(0));
//! assert_eq!(picked(&router.choose(&home, &backends, &first_attempt())), Some(0));
//! assert_eq!(picked(&router.choose(&home, &backends, &first_attempt())), Some(1));
//! ```
//!
//! # Example: feedback, fallbacks and signals
//!
//! A router that sends each request to the backend with the shortest scraped queue (plus what
//! lbx has in flight there since), names the runner-up as a fallback, retries a 503 there, and
//! counts the 503s it hears about:
//!
//! ```
//! use lbx_guest::{Backends, Candidates, Decision, Outcome, Request, RetryContext, Router};
//!
//! #[derive(Default)]
//! pub struct ShortestQueue {
//!     overloaded: u64,
//! }
//!
//! impl Router for ShortestQueue {
//!     const OUTCOMES: bool = true;
//!
//!     fn init(config: &str) -> Result<Self, String> {
//!         lbx_guest::init_default(config)
//!     }
//!
//!     fn choose(&mut self, _: &dyn Request, backends: &Backends, retry: &RetryContext) -> Decision {
//!         let queue = backends.signal_slot("queue");
//!         let load = |i: usize| {
//!             let scraped = queue.and_then(|slot| backends.signal(i, slot)).unwrap_or(0.0);
//!             scraped + f64::from(backends[i].in_flight)
//!         };
//!         let mut order: Vec<usize> = Candidates::new(backends, retry).iter().collect();
//!         order.sort_by(|&a, &b| load(a).total_cmp(&load(b)));
//!         match order.as_slice() {
//!             [] => lbx_guest::no_opinion(),
//!             [best, rest @ ..] => lbx_guest::pick(*best).fallbacks(rest.iter().take(1)).retry_on(&[503]),
//!         }
//!     }
//!
//!     fn on_outcome(&mut self, outcome: &Outcome) {
//!         self.overloaded += u64::from(outcome.status == Some(503));
//!     }
//! }
//!
//! lbx_guest::export_router!(ShortestQueue);
//!
//! use lbx_guest::testkit::{FakeRequest, answered, attempt_order, deliver, first_attempt, loads};
//!
//! let mut router = ShortestQueue::init("{}").unwrap();
//! let backends = loads(&[1, 0, 0])
//!     .with_signals(&["queue"])
//!     .scraped(0, 100.0, &[0.0])
//!     .scraped(1, 100.0, &[9.0])
//!     .scraped(2, 100.0, &[3.0]);
//! let decision = router.choose(&FakeRequest::get("/"), &backends, &first_attempt());
//! assert_eq!(attempt_order(&decision), [0, 2]);
//! assert!(deliver(&mut router, &answered(0, 503, 1_200)));
//! assert_eq!(router.overloaded, 1);
//! ```
//!
//! Build it as a component with
//! `cargo build --profile plugin --target wasm32-wasip2 -p <crate>` (crate type `cdylib`);
//! the lbx repository's `plugins/build.sh` does this for the bundled plugins.
#![deny(missing_docs)]

#[doc(hidden)]
#[allow(unsafe_code, missing_docs)] // generated canonical-ABI glue
pub mod bindings;

mod backends;
mod body;
mod candidates;
mod clock;
mod config;
mod cookie;
mod decision;
mod export;
mod hash;
pub mod kv;
mod log;
mod request;
mod rng;
mod router;
mod stats;
mod table;
pub mod testkit;
mod weighted;

pub use backends::Backends;
pub use bindings::lbx::router::host::LogLevel;
pub use bindings::lbx::router::types::{
    BackendInfo, Decision, Fault, Header, Outcome, Pick, PickOptions, Rejection, RetryContext,
};
pub use body::json_string_field;
pub use candidates::{Candidates, healthy_indices};
pub use clock::now_us;
pub use config::{config_error, parse_config};
pub use cookie::cookie_value;
pub use decision::{header, no_opinion, pick, pick_with_headers, reject};
pub use hash::{fnv1a_64, fnv1a_64_extend, mix64, stable_hash};
pub use log::log;
pub use request::Request;
pub use rng::FastRng;
pub use router::{Router, config_is_empty, init_default};
pub use serde;
pub use stats::{BackendStats, STATS_FIELDS, flatten_stats, unflatten_stats};
pub use table::BackendTable;
pub use weighted::{SmoothWeighted, weighted_random};
pub use wit_bindgen;

#[doc(hidden)]
pub mod __private {
    //! Support for the expansion of [`export_router!`](crate::export_router); not a public API.
    pub use crate::bindings::exports::lbx::router::router::Features;
    pub use crate::bindings::lbx::router::types::Request as HostRequest;
    pub use crate::export::{Slot, backends_changed, choose, init, on_outcome};
}

/// The repository README's plugin examples, compiled as doctests so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExample;
