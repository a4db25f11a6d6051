//! lbx integration tests: real sockets on 127.0.0.1, real plugins compiled by host/build.rs.
//! One test binary with a module per feature, so wasmtime is linked once.
//!
//! Run: `cargo test -p lbx --test integration`

mod support;

mod bodies;
mod errors;
mod protocols;
mod resilience;
mod routing;
mod startup;
