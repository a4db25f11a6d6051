//! The one `bindgen!` of the host. Everything generated from `wit/` lives here; the rest of the
//! crate goes through `plugin::runtime` and `plugin::host_api` and never names these types.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    with: {
        "lbx:router/types.request": super::host_api::RequestHandle,
    },
});

pub use self::exports::lbx::router::router::{BackendInfo, Decision, RetryContext};
pub use self::lbx::router::host::LogLevel;
pub use self::lbx::router::types::Header;
