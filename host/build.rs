//! Builds the routing plugins for wasm32-wasip2 so the binary can embed least_conn and
//! llm_router (for `lbx demo` and `lbx demo --llm`) and tests and benchmarks get real plugins:
//! each path is exposed as the compile-time variable `LBX_PLUGIN_<NAME>`.
//!
//! The nested cargo uses its own directory under `target/` (`target/wasm-plugins`): sharing
//! the outer build's directory would deadlock on cargo's build lock. Only the small guest
//! crates are built there; wasmtime and the host dependencies are built once, outside.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Plugin crates built here: the product plugins, then test-only plugins.
const PLUGINS: &[&str] = &[
    "round_robin",
    "least_conn",
    "random",
    "weighted_round_robin",
    "p2c_ewma",
    "consistent_hash",
    "sticky_cookie",
    "header_router",
    "llm_router",
    // tests/plugins: misbehaving and counting on purpose, and a component of another world.
    "test_router",
    "not_a_router",
];

fn main() {
    let host_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = host_dir.parent().expect("host/ sits in the workspace root");
    for watched in [
        "wit",
        "guest-sdk",
        "plugins",
        "tests/plugins",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-plugins");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(root)
        .args(["build", "--profile", "plugin", "--target", "wasm32-wasip2"])
        .args(PLUGINS.iter().flat_map(|p| ["-p", p]))
        .env("CARGO_TARGET_DIR", &target_dir)
        // Settings meant for the host build must not leak into the guest build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_PROFILE_RELEASE_DEBUG");
    let status = cargo
        .status()
        .expect("cannot run cargo to build the wasm plugins");
    if !status.success() {
        panic!(
            "building the wasm plugins failed (see above). If the target is missing, run: \
             rustup target add wasm32-wasip2"
        );
    }

    let out = target_dir.join("wasm32-wasip2").join("plugin");
    for plugin in PLUGINS {
        let wasm = out.join(format!("{plugin}.wasm"));
        assert!(exists(&wasm), "expected {} after the build", wasm.display());
        println!(
            "cargo:rustc-env=LBX_PLUGIN_{}={}",
            plugin.to_uppercase(),
            wasm.display()
        );
    }
}

fn exists(path: &Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file())
}
