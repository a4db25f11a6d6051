//! The Rust project: a cdylib crate on a copy of the `lbx-guest` SDK (in `lbx-guest/`, with the
//! contract in `wit/`), a least-in-flight router to start from, its native tests on the SDK's
//! test kit, `build.sh` and a README.

use super::{ProjectFile, contract, sdk_files};

/// Every file of a Rust project named `name`.
pub fn files(name: &str) -> Vec<ProjectFile> {
    let mut files = vec![
        ("Cargo.toml".to_string(), cargo_toml(name)),
        ("src/lib.rs".into(), LIB_RS.replace("{name}", name)),
        ("src/tests.rs".into(), TESTS_RS.replace("{name}", name)),
        ("build.sh".into(), BUILD_SH.replace("{name}", name)),
        ("README.md".into(), README.replace("{name}", name)),
        (".gitignore".into(), "/target\n/*.wasm\n".into()),
        ("lbx-guest/Cargo.toml".into(), SDK_CARGO_TOML.into()),
        contract(),
    ];
    for (path, contents) in sdk_files::RUST_SDK {
        let contents = if *path == "lib.rs" {
            // The repository's README is not in the project: its doctests stay in lbx's tree.
            contents.replace(
                "/// The repository README's plugin examples, compiled as doctests so they cannot go stale.\n\
                 #[cfg(doctest)]\n#[doc = include_str!(\"../../README.md\")]\nstruct ReadmeExample;\n",
                "",
            )
        } else {
            contents.to_string()
        };
        files.push((format!("lbx-guest/src/{path}"), contents));
    }
    files
}

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
# cdylib: the Wasm component; rlib: the native tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
lbx-guest = {{ path = "lbx-guest" }}

# What lbx's own plugins are built with: small, and fast per decision.
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A project of its own, even when created inside another Cargo workspace.
[workspace]
"#
    )
}

/// The SDK's manifest, with the versions lbx's own workspace pins.
const SDK_CARGO_TOML: &str = r#"[package]
name = "lbx-guest"
description = "SDK for writing lbx routing plugins in Rust (copied in by `lbx plugin new`)"
version = "0.1.0"
edition = "2024"

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = "1"
serde_path_to_error = "0.1"
wit-bindgen = { version = "0.63", default-features = false, features = ["macros", "realloc", "bitflags"] }
"#;

const LIB_RS: &str = r#"//! {name}: an lbx routing plugin. As created, it sends each request to the healthy backend with
//! the fewest requests in flight, and a retry to one that has not failed the request yet; with
//! no healthy backend it has no opinion and lbx's own choice decides. Change `choose`.
//!
//! Test: `cargo test`. Build: `bash build.sh`. Check: `lbx check {name}.wasm`.

use lbx_guest::{Backends, Candidates, Decision, Request, RetryContext, Router};

/// The plugin's state, kept between decisions (one per plugin instance).
#[derive(Debug, Default)]
pub struct Plugin {}

impl Router for Plugin {
    /// `[plugin.config]` from lbx.toml, as JSON; this one takes none.
    fn init(config: &str) -> Result<Self, String> {
        lbx_guest::init_default(config)
    }

    fn choose(&mut self, _req: &dyn Request, backends: &Backends, retry: &RetryContext) -> Decision {
        let least = Candidates::new(backends, retry)
            .iter_from(0)
            .min_by_key(|&index| backends[index].in_flight);
        match least {
            Some(index) => lbx_guest::pick(index),
            None => lbx_guest::no_opinion(),
        }
    }
}

lbx_guest::export_router!(Plugin);

#[cfg(test)]
mod tests;
"#;

const TESTS_RS: &str = r##"//! The plugin's logic, run natively on the SDK's test kit: `cargo test`, no Wasm build.

use lbx_guest::testkit::{FakeRequest, backend, first_attempt, loads, picked, retry};
use lbx_guest::{Backends, Router};

use crate::Plugin;

fn plugin() -> Plugin {
    Plugin::init("{}").expect("an empty config is accepted")
}

#[test]
fn the_least_loaded_backend_is_picked() {
    let decision = plugin().choose(&FakeRequest::get("/"), &loads(&[5, 2, 9]), &first_attempt());
    assert_eq!(picked(&decision), Some(1));
}

#[test]
fn a_down_backend_is_never_picked() {
    let backends = Backends::from([backend(false, 0), backend(true, 7)]);
    let decision = plugin().choose(&FakeRequest::get("/"), &backends, &first_attempt());
    assert_eq!(picked(&decision), Some(1));
}

#[test]
fn a_retry_goes_to_a_backend_that_has_not_failed_it() {
    let decision = plugin().choose(&FakeRequest::get("/"), &loads(&[0, 3]), &retry(&[0]));
    assert_eq!(picked(&decision), Some(1));
}

#[test]
fn a_config_is_refused_since_none_is_taken() {
    assert!(Plugin::init(r#"{"weights": [1, 2]}"#).is_err());
}
"##;

const BUILD_SH: &str = r#"#!/usr/bin/env bash
# Build {name}.wasm, the component lbx loads.
#
# Run: bash build.sh   (needs the wasm32-wasip2 target: rustup target add wasm32-wasip2)
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{name}.wasm" {name}.wasm
echo "built {name}.wasm ($(wc -c <{name}.wasm) bytes)"
"#;

const README: &str = r#"# {name}

An lbx routing plugin in Rust, created by `lbx plugin new --lang rust {name}`.

```sh
cargo test              # the logic, natively, on the SDK's test kit (src/tests.rs)
bash build.sh           # {name}.wasm (needs: rustup target add wasm32-wasip2)
lbx check {name}.wasm   # loads it as lbx would: its decisions, their µs, its memory
```

Then run it: `lbx run --plugin {name}.wasm --backend http://127.0.0.1:9001 --backend …`, or set
`[plugin] path` in lbx.toml; replacing the file swaps it in without a restart.

`src/lib.rs` is the plugin. `lbx-guest/` is a copy of lbx's Rust SDK and `wit/router.wit` the
contract it speaks (`lbx:router@0.2.0`); the guide to both is docs/plugins.md in lbx's
repository.
"#;
