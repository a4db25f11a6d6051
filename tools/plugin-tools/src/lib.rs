//! The steps of building a C or Go plugin that are not the compiler's, as library calls
//! rather than two more CLIs to install (wit-bindgen-cli and wasm-tools build every language
//! and every subcommand; this builds only the C generator and the component encoder, both
//! already in the workspace's dependency graph). Used by the `lbx-plugin-tools` binary (the
//! repository's example builds) and by `lbx plugin bindings` / `lbx plugin component` (projects
//! made by `lbx plugin new --lang c|go`, outside the repository).
//!
//! - [`c_bindings`]: the C bindings of a world (`plugin.h`, `plugin.c`, and
//!   `plugin_component_type.o`, the object carrying the world's type that the component encoder
//!   reads back from the linked module), as `wit-bindgen c` writes them.
//! - [`component`]: clang's core module (built with `-mexec-model=reactor`) wrapped into a
//!   component, its WASI preview1 imports served by the reactor adapter that matches the host's
//!   wasmtime, as `wasm-tools component new --adapt`.
//! - [`go_component`]: the same for Go's wasip1 library (`go build -buildmode=c-shared`), which
//!   carries no world type and no producers: the world is embedded from the WIT package, the
//!   module marked `language: Go`, and the adapter given the memory the Go SDK reserves for it
//!   (the module `go_adapter_memory`).
//! - [`quickjs_fix`]: a component made by componentize-qjs (QuickJS) made to drop the borrowed
//!   request before `choose` returns, which its runtime leaves to post-return (the module
//!   `quickjs_borrow`).

mod go_adapter_memory;
mod quickjs_borrow;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::Files;
use wit_parser::Resolve;

/// Write the C bindings of `world` (from the WIT package in `wit`) into `out`.
pub fn c_bindings(wit: &Path, world: &str, out: &Path) -> Result<()> {
    let (mut resolve, world) = load_world(wit, world)?;
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
pub fn component(core: &Path, out: &Path) -> Result<()> {
    let module = read_core_module(core)?;
    let mut encoder = wit_component::ComponentEncoder::default();
    encoder.module(&module).context(
        "the module carries no lbx:router world type (was plugin_component_type.o linked?)",
    )?;
    write_with_adapter(&mut encoder, out)
}

/// Wrap Go's wasip1 library `core` into a component at `out`, implementing `world` of the WIT
/// package in `wit`; `go_version` (`go env GOVERSION`) goes into the producers section.
pub fn go_component(
    core: &Path,
    wit: &Path,
    world: &str,
    go_version: &str,
    out: &Path,
) -> Result<()> {
    let module = read_core_module(core)?;
    let module = go_adapter_memory::add_adapter_allocator(&module)?;
    let mut producers = wasm_metadata::Producers::empty();
    producers.add("language", "Go", "");
    producers.add("processed-by", "go", go_version.trim_start_matches("go"));
    let mut module = producers
        .add_to_wasm(&module)
        .context("cannot add the producers section")?;
    let (resolve, world) = load_world(wit, world)?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )?;
    let mut encoder = wit_component::ComponentEncoder::default();
    encoder.module(&module)?;
    write_with_adapter(&mut encoder, out)
}

/// `world` of the WIT package in the directory `wit`.
fn load_world(wit: &Path, world: &str) -> Result<(Resolve, wit_parser::WorldId)> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .with_context(|| format!("cannot read the WIT package in {}", wit.display()))?;
    let world = resolve.select_world(&[package], Some(world))?;
    Ok((resolve, world))
}

/// Encode the module `encoder` holds as a component at `out`, its WASI preview1 imports served
/// by the reactor adapter that matches the host's wasmtime.
fn write_with_adapter(encoder: &mut wit_component::ComponentEncoder, out: &Path) -> Result<()> {
    let component = encoder
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
        .context("cannot make a component of the module")?;
    std::fs::write(out, component).with_context(|| format!("cannot write {}", out.display()))
}

/// The bytes of the core module at `path`, refused unless they are one (a component, or not Wasm
/// at all, would otherwise fail later with an error about world types).
fn read_core_module(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !wasmparser::Parser::is_core_wasm(&bytes) {
        anyhow::bail!(
            "{} is not a core Wasm module (a compiler's output for wasm32, before it is made a \
             component)",
            path.display()
        );
    }
    Ok(bytes)
}

/// Rewrite the QuickJS component `component` into `out`, dropping the borrowed request before
/// `choose` returns (see the module `quickjs_borrow`).
pub fn quickjs_fix(component: &Path, out: &Path) -> Result<()> {
    let bytes =
        std::fs::read(component).with_context(|| format!("cannot read {}", component.display()))?;
    let fixed = quickjs_borrow::drop_request_before_choose_returns(&bytes)
        .with_context(|| format!("{}", component.display()))?;
    std::fs::write(out, fixed).with_context(|| format!("cannot write {}", out.display()))
}
