#!/usr/bin/env bash
# Build the JavaScript header router (app.js on the @lbx/router SDK in sdk/js, entry plugin.js)
# into a Wasm component for lbx, against contract lbx:router@0.2.0 (wit/).
#
# Run: bash examples/js/header_router/build.sh [OUT.wasm] [--engine qjs|starlingmonkey]
#      (default OUT: examples/js/header_router/header_router.wasm; default engine: qjs, QuickJS;
#      build.mjs compares the two)
# Needs node 20.19+ and npm (scripts/setup.sh installs them), and cargo for tools/plugin-tools,
# whose `quickjs-fix` makes QuickJS's component drop the borrowed request in time (build.mjs
# says why). The first run installs the pinned toolchain (package-lock.json: componentize-qjs,
# componentize-js, jco, rolldown) with `npm ci` into node_modules (~20 s); a build then takes
# ~2-6 s with QuickJS, ~15-60 s with StarlingMonkey. package.json pins componentize-js 0.20.0,
# the fastest StarlingMonkey measured (docs/plugins.md, section 11), and
# @bytecodealliance/preview2-shim, which componentize-js imports at build time but lists only
# as a dev dependency of its own.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="$here/header_router.wasm"
engine=qjs
while [[ $# -gt 0 ]]; do
	case "$1" in
	--engine) engine="$2"; shift 2 ;;
	*) out="$1"; shift ;;
	esac
done
[[ "$out" = /* ]] || out="$PWD/$out"

for tool in node npm; do
	command -v "$tool" >/dev/null 2>&1 || { echo "$tool not found: install Node.js (bash scripts/setup.sh)" >&2; exit 1; }
done
cd "$here"
# `npm ci` installs exactly what package-lock.json pins and never rewrites it; it runs again
# whenever the lock is newer than the last install.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
	npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
if [[ "$engine" == qjs ]]; then
	# shellcheck source=../../../tools/plugin-tools/tools.sh
	source "$root/tools/plugin-tools/tools.sh"
	tools="$(lbx_plugin_tools)"
	work="$(mktemp -d)"
	trap 'rm -rf "$work"' EXIT
	node build.mjs plugin.js "$root/wit" "$work/quickjs.wasm" --engine qjs
	"$tools" quickjs-fix "$work/quickjs.wasm" "$out"
	echo "made $out loadable by lbx: the borrowed request dropped before choose returns"
else
	node build.mjs plugin.js "$root/wit" "$out" --engine "$engine"
fi
