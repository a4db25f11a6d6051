//! lbx: an HTTP load balancer whose backend choice is made by a sandboxed, hot-swappable
//! WebAssembly component plugin.
//!
//! The host owns everything that must be fast and safe (sockets, HTTP/1.1 and HTTP/2, pools,
//! health, errors); the plugin, behind the WIT contract in `wit/`, only decides. Start with
//! [`server::Server`].

pub mod accept;
pub mod admin;
pub mod canary;
pub mod check;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod durable;
pub mod fleet;
#[doc(hidden)]
pub mod fuzz_settings;
pub mod history;
pub mod http1;
pub mod llm_load;
pub mod llm_sim;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod outcome;
pub mod plugin;
pub mod proxy;
pub mod recording;
pub mod reload;
pub mod replay;
pub mod runtime_backends;
pub mod sampler;
pub mod scaffold;
pub mod server;
pub mod shadow;
pub mod shutdown;
pub mod signals;
pub mod tls;
pub mod upstream;
pub mod validate;

pub use config::Config;
pub use server::{PluginSource, Server};

/// The least-connections plugin compiled into the binary, used by `lbx demo` (and as the
/// baseline of `lbx demo --llm`).
pub const EMBEDDED_LEAST_CONN: &[u8] = include_bytes!(env!("LBX_PLUGIN_LEAST_CONN"));

/// The LLM inference router plugin compiled into the binary, used by `lbx demo --llm`.
pub const EMBEDDED_LLM_ROUTER: &[u8] = include_bytes!(env!("LBX_PLUGIN_LLM_ROUTER"));
