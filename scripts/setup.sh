#!/usr/bin/env bash
# Prepare a fresh machine to build lbx: the pinned Rust toolchain (rust-toolchain.toml) and
# the wasm32-wasip2 target the plugins are compiled for. Idempotent; sourced by demo.sh/test.sh.
#
# Run: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v rustup >/dev/null 2>&1; then
  echo "setup: rustup is required (https://rustup.rs); it manages the pinned toolchain" >&2
  exit 1
fi
toolchain=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
# rustup installs the pinned toolchain on first use, but not always its extra targets.
rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy >/dev/null
rustup target add --toolchain "$toolchain" wasm32-wasip2 >/dev/null
echo "setup: Rust $toolchain with wasm32-wasip2 ready"
