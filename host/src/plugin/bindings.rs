//! The one `bindgen!` of the host. Everything generated from `wit/` lives here; the rest of the
//! crate goes through `plugin::runtime` and `plugin::host_api` and never names these types.

wasmtime::component::bindgen!({
    path: "../wit/v0.1",
    world: "plugin",
    with: {
        "lbx:router/types.request": RequestHandle,
    },
});

/// Marker type for the guest's handle on the current request. The handle carries no data: a
/// store serves one decision at a time, and the request it is about sits in the store's
/// `HostState`.
#[derive(Debug)]
pub struct RequestHandle;

pub use self::exports::lbx::router::router::{BackendInfo, Decision, RetryContext};
pub use self::lbx::router::host::LogLevel;
pub use self::lbx::router::types::Header;
