#!/usr/bin/env bash
# Test the C header router natively: header_router.c and its tests (test_header_router.c, or
# the test files given) compiled with the host's C compiler against the SDK's test kit
# (sdk/c/lbx_router_testkit.h) under AddressSanitizer, so a leaked argument or a bad free
# fails the run as surely as a wrong pick. No Wasm is built.
#
# Run: bash examples/c/header_router/test.sh [TEST.c ...]
# Needs a C compiler ($CC or cc) and cargo (tools/plugin-tools generates the bindings' header).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
sdk="$root/sdk/c"
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("$here/test_header_router.c")

# shellcheck source=../../../sdk/c/toolchain.sh
source "$sdk/toolchain.sh"
cc="$(lbx_c_native_cc)"
tools="$(lbx_plugin_tools)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$tools" bindings "$root/wit" plugin "$work"
"$cc" -std=c11 -g -O1 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-unused-function \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
	-I "$sdk" -I "$work" "$here/header_router.c" "${tests[@]}" -o "$work/test" -lm
ASAN_OPTIONS=detect_leaks=1 "$work/test"
