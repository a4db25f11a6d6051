//! Logging through the host.

use crate::LogLevel;

/// Writes a line to lbx's log, tagged with the plugin.
///
/// In a Wasm plugin this calls the host's `log` import. Natively (unit tests) it prints the
/// line to stderr, where `cargo test` captures it.
///
/// Logging costs a string copy into the host: keep it off the per-request path, or behind a
/// rarely taken branch.
///
/// ```
/// use lbx_guest::{LogLevel, log};
///
/// log(LogLevel::Info, "round robin over 3 backends");
/// ```
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::lbx::router::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[lbx plugin {}] {message}", level_name(level));
}

#[cfg(not(target_arch = "wasm32"))]
fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}
