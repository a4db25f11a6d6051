# tools.sh: builds tools/plugin-tools for the repository's plugin build scripts (sourced, not
# run). The C, Go and QuickJS examples call its binary for the steps that are not their
# compiler's (bindings, component wrapping, the QuickJS borrow fix); outside the repository the
# same steps are `lbx plugin bindings` and `lbx plugin component`.
#
# Use: source tools/plugin-tools/tools.sh; tools="$(lbx_plugin_tools)"

lbx_plugin_tools_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Build tools/plugin-tools (a no-op once built) and print the binary's path. Its own target
# directory: a build run from inside `cargo test` must not wait on the test build's lock.
lbx_plugin_tools() {
	command -v cargo >/dev/null 2>&1 || {
		echo "cargo not found (tools/plugin-tools is built with it): run scripts/setup.sh" >&2
		exit 1
	}
	local target="${CARGO_TARGET_DIR:-$lbx_plugin_tools_root/target}/plugin-tools"
	cargo build -q -p lbx-plugin-tools --manifest-path "$lbx_plugin_tools_root/Cargo.toml" --target-dir "$target" >&2
	echo "$target/debug/lbx-plugin-tools"
}
