//! Compiling a plugin without keeping the compiler's memory.
//!
//! Cranelift keeps one compilation context per compiling thread inside the engine, to reuse
//! its buffers; with inlining enabled those held ~120 MiB after compiling a 66 KB Rust
//! component (measured: RSS 6 MiB before, 128 MiB after, unchanged by dropping the plugin or
//! trimming malloc; 19 MiB with the throwaway engine below). lbx
//! compiles rarely and runs for months, so it compiles in a throwaway engine with the same
//! configuration, then loads the artifact into the long-lived engine, which never compiles and
//! never grows those contexts.

use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// Compile `bytes` for `runtime` (which was built from `config`).
pub fn compile_component(
    config: &Config,
    runtime: &Engine,
    bytes: &[u8],
) -> wasmtime::Result<Component> {
    let artifact = {
        let compiler = Engine::new(config)?;
        compiler.precompile_component(bytes)?
        // `compiler` and its contexts are freed here.
    };
    super::return_free_memory();
    #[allow(unsafe_code)]
    // SAFETY: `deserialize` trusts its input to be a wasmtime artifact for a compatible
    // engine. These bytes were produced a line above by an engine with the same `Config`, in
    // this process; they never touched the disk or anyone else.
    unsafe {
        Component::deserialize(runtime, &artifact)
    }
}
