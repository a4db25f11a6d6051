//! `lbx-plugin-tools`: the C and Go plugin build steps of [`lbx_plugin_tools`] as a command, for
//! the repository's example builds (built into its own target directory by their scripts, so a
//! build.sh run inside `cargo test` never waits on the test build's lock).
//!
//! - `lbx-plugin-tools bindings WIT_DIR WORLD OUT_DIR`: the C bindings of a world.
//! - `lbx-plugin-tools component CORE.wasm OUT.wasm`: clang's core module as a component.
//! - `lbx-plugin-tools go-component CORE.wasm WIT_DIR WORLD GO_VERSION OUT.wasm`: Go's.
//! - `lbx-plugin-tools quickjs-fix COMPONENT.wasm OUT.wasm`: componentize-qjs's component with
//!   the borrowed request dropped before `choose` returns.
//!
//! Run: `cargo run -p lbx-plugin-tools -- bindings wit plugin /tmp/out` (examples/c/*/build.sh
//! and examples/go/*/build.sh build and call it).

use std::path::Path;

use anyhow::{Result, bail};
use lbx_plugin_tools::{c_bindings, component, go_component, quickjs_fix};

const USAGE: &str = "usage: lbx-plugin-tools bindings WIT_DIR WORLD OUT_DIR\n       \
                     lbx-plugin-tools component CORE.wasm OUT.wasm\n       \
                     lbx-plugin-tools go-component CORE.wasm WIT_DIR WORLD GO_VERSION OUT.wasm\n       \
                     lbx-plugin-tools quickjs-fix COMPONENT.wasm OUT.wasm";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["bindings", wit, world, out] => c_bindings(Path::new(wit), world, Path::new(out)),
        ["component", core, out] => component(Path::new(core), Path::new(out)),
        ["go-component", core, wit, world, go_version, out] => go_component(
            Path::new(core),
            Path::new(wit),
            world,
            go_version,
            Path::new(out),
        ),
        ["quickjs-fix", component, out] => quickjs_fix(Path::new(component), Path::new(out)),
        _ => bail!("{USAGE}"),
    }
}
