//! Containing host panics raised inside a plugin call.
//!
//! wasmtime-wasi's synchronous WASI bindings run blocking operations (writing to stdout or
//! stderr, `poll`, dropping an output stream) by entering the ambient tokio runtime with
//! `block_on`, which panics on a runtime worker thread — where every lbx decision runs. A
//! plugin that `print`s would otherwise abort the request's task. Such a panic is caught at the
//! call boundary (wasmtime unwinds it through the Wasm frames) and becomes a failed decision
//! like a trap: the instance is discarded and the fallback answers.
//!
//! The process-wide panic hook stays quiet for these (a debug line instead of a backtrace on
//! stderr); every other panic is reported as before.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Once;

thread_local! {
    static IN_PLUGIN_CALL: Cell<bool> = const { Cell::new(false) };
}

/// Install the hook (once per process).
pub fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_PLUGIN_CALL.with(Cell::get) {
                tracing::debug!(%info, "host panic inside a plugin call (contained)");
            } else {
                previous(info);
            }
        }));
    });
}

/// Run one call into the plugin; a host panic during it becomes an error.
pub fn contain<R>(call: impl FnOnce() -> wasmtime::Result<R>) -> wasmtime::Result<R> {
    IN_PLUGIN_CALL.with(|flag| flag.set(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(call));
    IN_PLUGIN_CALL.with(|flag| flag.set(false));
    result.unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(wasmtime::Error::msg(format!(
            "the plugin used blocking WASI I/O (stdout, stderr or poll), which lbx does not \
             provide to plugins; log through the host's `log` import instead ({detail})"
        )))
    })
}
