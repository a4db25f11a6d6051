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

# componentize-py builds the example Python plugin, which the test suite runs through lbx.
COMPONENTIZE_PY=0.25.1
if ! python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('componentize-py') != '$COMPONENTIZE_PY')" 2>/dev/null; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      (apt-get update -qq && apt-get install -y -qq python3-pip) >/dev/null
    else
      echo "setup: python3 with pip is required for the Python plugin example" >&2
      exit 1
    fi
  fi
  # --user first; Debian's system Python refuses that without --break-system-packages.
  python3 -m pip install --quiet --user "componentize-py==$COMPONENTIZE_PY" 2>/dev/null ||
    python3 -m pip install --quiet --user --break-system-packages "componentize-py==$COMPONENTIZE_PY"
fi
echo "setup: componentize-py $COMPONENTIZE_PY ready"
