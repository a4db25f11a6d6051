#!/usr/bin/env bash
# Build the C header router (header_router.c, on the lbx_router SDK in sdk/c) into a Wasm
# component for lbx, against contract lbx:router@0.2.0 (wit/).
#
# Run: bash examples/c/header_router/build.sh [OUT.wasm]
#      (default OUT: examples/c/header_router/header_router.wasm)
# Needs clang, lld, wasi-libc and libclang-rt-14-dev-wasm32 (Debian; scripts/setup.sh installs
# them) and cargo, which builds tools/plugin-tools (the bindings generator and component wrapper).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$here/header_router.wasm}"
sdk="$root/sdk/c"

# shellcheck source=../../../sdk/c/toolchain.sh
source "$sdk/toolchain.sh"
lbx_c_require_wasm_toolchain
tools="$(lbx_plugin_tools)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$tools" bindings "$root/wit" plugin "$work"
# -mexec-model=reactor: a library instance (no main) whose exports lbx calls many times.
# -O2, and no debug info: the decision path is small and lbx check reports its size.
clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
	-Wno-unused-parameter -I "$sdk" -I "$work" \
	"$here/header_router.c" "$work/plugin.c" "$work/plugin_component_type.o" \
	-Wl,--strip-debug -o "$work/core.wasm"
"$tools" component "$work/core.wasm" "$out"
echo "built $out ($(wc -c <"$out") bytes)"
