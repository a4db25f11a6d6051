//! `lbx-plugin-tools`: the steps of a C or Go plugin build that are not the compiler's, as
//! library calls rather than two more CLIs to install (wit-bindgen-cli and wasm-tools build
//! every language and every subcommand; this builds only the C generator and the component
//! encoder, both already in the workspace's dependency graph).
//!
//! - `lbx-plugin-tools bindings WIT_DIR WORLD OUT_DIR`: the C bindings of a world (`plugin.h`,
//!   `plugin.c`, and `plugin_component_type.o`, the object carrying the world's type that
//!   the component encoder reads back from the linked module), as `wit-bindgen c` writes them.
//! - `lbx-plugin-tools component CORE.wasm OUT.wasm`: wrap clang's core module (built with
//!   `-mexec-model=reactor`) into a component, its WASI preview1 imports served by the
//!   reactor adapter that matches the host's wasmtime, as `wasm-tools component new --adapt`.
//! - `lbx-plugin-tools go-component CORE.wasm WIT_DIR WORLD GO_VERSION OUT.wasm`: the same for
//!   Go's wasip1 library (`go build -buildmode=c-shared`), which carries no world type and no
//!   producers: the world is embedded from `WIT_DIR`, the module marked `language: Go`, and the
//!   adapter given the memory the Go SDK reserves for it ([`go_adapter_memory`]).
//!
//! Run: `cargo run -p lbx-plugin-tools -- bindings wit plugin /tmp/out` (examples/c/*/build.sh
//! and examples/go/*/build.sh build and call it).

mod go_adapter_memory;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::Files;
use wit_parser::Resolve;

const USAGE: &str = "usage: lbx-plugin-tools bindings WIT_DIR WORLD OUT_DIR\n       \
                     lbx-plugin-tools component CORE.wasm OUT.wasm\n       \
                     lbx-plugin-tools go-component CORE.wasm WIT_DIR WORLD GO_VERSION OUT.wasm";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["bindings", wit, world, out] => bindings(Path::new(wit), world, Path::new(out)),
        ["component", core, out] => component(Path::new(core), Path::new(out)),
        ["go-component", core, wit, world, go_version, out] => go_component(
            Path::new(core),
            Path::new(wit),
            world,
            go_version,
            Path::new(out),
        ),
        _ => bail!("{USAGE}"),
    }
}

/// Write the C bindings of `world` (from the WIT package in `wit`) into `out`.
fn bindings(wit: &Path, world: &str, out: &Path) -> Result<()> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .with_context(|| format!("cannot read the WIT package in {}", wit.display()))?;
    let world = resolve.select_world(&[package], Some(world))?;
    let mut files = Files::default();
    // Autodrop: the glue drops the borrowed `request` after `choose` returns (the component
    // model traps on a borrow still held when an export returns), so no plugin has to.
    wit_bindgen_c::Opts {
        autodrop_borrows: wit_bindgen_c::Enabled::Yes,
        ..Default::default()
    }
    .build()
    .generate(&mut resolve, world, &mut files)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, contents) in files.iter() {
        let path: PathBuf = out.join(name);
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Wrap the core module in `core` into a component at `out`.
fn component(core: &Path, out: &Path) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("cannot read {}", core.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .context(
            "the module carries no lbx:router world type (was plugin_component_type.o linked?)",
        )?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
        .context("cannot make a component of the module")?;
    std::fs::write(out, component).with_context(|| format!("cannot write {}", out.display()))
}

/// Wrap Go's wasip1 library `core` into a component at `out`, implementing `world` of the WIT
/// package in `wit`; `go_version` (`go env GOVERSION`) goes into the producers section.
fn go_component(core: &Path, wit: &Path, world: &str, go_version: &str, out: &Path) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("cannot read {}", core.display()))?;
    let module = go_adapter_memory::add_adapter_allocator(&module)?;
    let mut producers = wasm_metadata::Producers::empty();
    producers.add("language", "Go", "");
    producers.add("processed-by", "go", go_version.trim_start_matches("go"));
    let mut module = producers
        .add_to_wasm(&module)
        .context("cannot add the producers section")?;
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .with_context(|| format!("cannot read the WIT package in {}", wit.display()))?;
    let world = resolve.select_world(&[package], Some(world))?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
        .context("cannot make a component of the module")?;
    std::fs::write(out, component).with_context(|| format!("cannot write {}", out.display()))
}
