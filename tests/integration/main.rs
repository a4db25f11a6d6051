//! lbx integration tests: real sockets on 127.0.0.1, real plugins compiled by host/build.rs.
//! One test binary with a module per feature, so wasmtime is linked once.
//!
//! Run: `cargo test -p lbx --test integration`

mod support;

mod admin_access;
mod backends;
mod bodies;
mod body_relay_property;
mod c_sdk;
mod canary;
mod check;
mod config_reload;
mod contract;
mod dashboard;
mod discovery;
mod errors;
mod faults;
mod fleet;
mod fleet_canary;
mod fleet_failures;
mod fleet_follow;
mod fleet_store;
mod go_sdk;
mod grpc;
mod hot_swap;
mod js_sdk;
mod llm_demo;
mod llm_load;
mod llm_router;
mod llm_sim;
mod logging;
mod nginx_differential;
mod observability;
mod operate_cli;
mod other_languages;
mod plugin_history;
mod plugin_library;
mod plugin_memory;
mod plugin_new;
mod protocols;
mod python_llm_router;
mod python_sdk;
mod record_replay;
mod resilience;
mod routing;
mod runtime_backends;
mod sandbox;
mod shadow;
mod shipped_configs;
mod signals;
mod startup;
mod streaming;
mod tls;
mod websocket;
mod wire;
