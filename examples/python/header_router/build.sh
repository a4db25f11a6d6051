#!/usr/bin/env bash
# Build the Python header router into a Wasm component for lbx.
#
# Run: bash examples/python/header_router/build.sh [OUT.wasm]
#      (default OUT: examples/python/header_router/header_router.wasm)
# Needs componentize-py 0.25.1 (pip install componentize-py==0.25.1; scripts/setup.sh does it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$here/header_router.wasm}"

# Run componentize-py through python3, so a `pip install --user` works without PATH changes.
componentize_py() { python3 -c 'import sys; from componentize_py import script; sys.exit(script())' "$@"; }
if ! python3 -c 'import componentize_py' 2>/dev/null; then
	echo "componentize-py not found: bash scripts/setup.sh (or pip install componentize-py==0.25.1)" >&2
	exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/app.py" "$work/"
cd "$work"
# Bindings for the lbx:router `plugin` world, then the component (CPython + app.py).
componentize_py -d "$root/wit/v0.1" -w plugin bindings . >/dev/null
componentize_py -d "$root/wit/v0.1" -w plugin componentize app -o "$out" >/dev/null
echo "built $out ($(wc -c <"$out") bytes)"
