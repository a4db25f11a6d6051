# toolchain.sh: the checks and tools a C plugin's build and test scripts share (sourced, not
# run). It owns: naming a missing tool with the package that provides it (a failure, never a
# silent skip); with it comes `lbx_plugin_tools` (tools/plugin-tools/tools.sh), which builds the
# bindings generator and component wrapper.
#
# Use: source sdk/c/toolchain.sh; lbx_c_require_wasm_toolchain; tools="$(lbx_plugin_tools)"

lbx_c_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

lbx_c_fail() {
	echo "$1: run scripts/setup.sh (Debian packages: clang lld wasi-libc libclang-rt-14-dev-wasm32)" >&2
	exit 1
}

# clang targeting wasm32-wasi, wasm-ld, wasi-libc and the compiler-rt builtins for wasm32.
lbx_c_require_wasm_toolchain() {
	command -v clang >/dev/null 2>&1 || lbx_c_fail "clang not found"
	command -v wasm-ld >/dev/null 2>&1 || lbx_c_fail "wasm-ld not found (package lld)"
	[ -f "$(clang --target=wasm32-wasi -print-file-name=libc.a)" ] ||
		lbx_c_fail "wasi-libc not found for clang --target=wasm32-wasi (package wasi-libc)"
	[ -f "$(clang --target=wasm32-wasi -print-libgcc-file-name)" ] ||
		lbx_c_fail "compiler-rt builtins for wasm32 not found (package libclang-rt-14-dev-wasm32)"
}

# A C compiler for the native test kit: $CC, else cc.
lbx_c_native_cc() {
	local cc="${CC:-cc}"
	command -v "$cc" >/dev/null 2>&1 || lbx_c_fail "no C compiler ($cc) for the native tests"
	echo "$cc"
}

# shellcheck source=../../tools/plugin-tools/tools.sh
source "$lbx_c_root/tools/plugin-tools/tools.sh"
