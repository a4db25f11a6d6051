//! A valid WebAssembly component that is not an lbx plugin: built for wasm32-wasip2 it is a
//! `wasi:cli/command`, exporting `wasi:cli/run` instead of `lbx:router/router` (of either
//! contract version, 0.1.0 or 0.2.0): it depends on neither. Tests write it over a plugin file
//! to check that lbx refuses it and keeps the running plugin.

fn main() {
    println!("I am not a router");
}
