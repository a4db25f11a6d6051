#!/usr/bin/env bash
# Set up (toolchain + wasm target) and run the whole test suite: unit tests of every crate,
# plugin logic through the SDK's native test kit, and the integration tests over real sockets.
#
# Run: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace
