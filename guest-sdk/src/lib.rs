//! SDK for writing lbx routing plugins in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2` that implements the `router`
//! interface of `wit/router.wit`. With this crate a plugin author writes plain Rust:
//!
//! 1. implement [`Router`] for a type that holds the plugin's state;
//! 2. call [`export_router!`] once with that type;
//! 3. unit-test the logic natively with [`testkit`] (`cargo test`, no Wasm needed).
//!
//! The per-request call carries numbers only ([`BackendStats`], [`RetryContext`]; the stats
//! cross the boundary as one flat list of `u32`, see [`unflatten_stats`]); strings such
//! as headers are fetched from the host on demand through [`Request`], so a plugin that never
//! reads one never pays for it.
//!
//! # Example
//!
//! A complete plugin that sends `/admin` requests to backend 0 and round-robins the rest over
//! healthy backends, avoiding backends that already failed this request:
//!
//! ```
//! use lbx_guest::{BackendStats, Candidates, Decision, Request, RetryContext, Router};
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
//!     fn choose(
//!         &mut self,
//!         req: &dyn Request,
//!         backends: &[BackendStats],
//!         retry: &RetryContext,
//!     ) -> Decision {
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
//! Build it as a component with
//! `cargo build --profile plugin --target wasm32-wasip2 -p <crate>` (crate type `cdylib`);
//! the lbx repository's `plugins/build.sh` does this for the bundled plugins.
#![deny(missing_docs)]

#[doc(hidden)]
#[allow(unsafe_code, missing_docs)] // generated canonical-ABI glue
pub mod bindings;

mod candidates;
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

pub use bindings::lbx::router::host::LogLevel;
pub use bindings::lbx::router::types::{
    BackendInfo, BackendStats, Decision, Header, Pick, RetryContext,
};
pub use candidates::{Candidates, healthy_indices};
pub use config::{config_error, parse_config};
pub use cookie::cookie_value;
pub use decision::{header, no_opinion, pick, pick_with_headers, reject};
pub use hash::{fnv1a_64, fnv1a_64_extend, mix64, stable_hash};
pub use log::log;
pub use request::Request;
pub use rng::FastRng;
pub use router::{Router, config_is_empty, init_default};
pub use serde;
pub use stats::{STATS_FIELDS, flatten_stats, unflatten_stats};
pub use table::BackendTable;
pub use weighted::{SmoothWeighted, weighted_random};
pub use wit_bindgen;

#[doc(hidden)]
pub mod __private {
    //! Support for the expansion of [`export_router!`](crate::export_router); not a public API.
    pub use crate::bindings::lbx::router::types::Request as HostRequest;
    pub use crate::export::{Slot, backends_changed, choose, init};
}

/// The repository README's plugin example, compiled as a doctest so it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExample;
