//! `lbx demo`: what a newcomer runs first, all in one process on loopback.
//!
//! - `plain.rs`: `lbx demo` (three tiny backends behind lbx with the embedded least_conn
//!   plugin) and the tiny backend `lbx backend` serves;
//! - `llm.rs`: `lbx demo --llm`, simulated vLLM replicas behind lbx with `llm_router`, then
//!   with least_conn, under the same seeded chat workload;
//! - `comparison.rs`: the table `lbx demo --llm` prints at the end.

mod comparison;
pub mod llm;
mod plain;

pub use comparison::Comparison;
pub use plain::{run, serve_backend};
