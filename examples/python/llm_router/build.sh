#!/usr/bin/env bash
# Build the Python LLM router (app.py and its llm_scoring package, on the lbx_router SDK in
# sdk/python) into a Wasm component for lbx, against contract lbx:router@0.2.0 (wit/).
#
# Run: bash examples/python/llm_router/build.sh [OUT.wasm]
#      (default OUT: examples/python/llm_router/llm_router.wasm)
# Needs componentize-py 0.25.1 (pip install componentize-py==0.25.1; scripts/setup.sh does it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$here/llm_router.wasm}"

# Run componentize-py through python3, so a `pip install --user` works without PATH changes.
componentize_py() { python3 -c 'import sys; from componentize_py import script; sys.exit(script())' "$@"; }
if ! python3 -c 'import componentize_py' 2>/dev/null; then
	echo "componentize-py not found: bash scripts/setup.sh (or pip install componentize-py==0.25.1)" >&2
	exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The plugin's own code only: not its tests, nor bytecode left by a test run.
cp "$here/app.py" "$work/"
mkdir "$work/llm_scoring"
cp "$here"/llm_scoring/*.py "$work/llm_scoring/"
cd "$work"
# Bindings for the lbx:router `plugin` world, then the component (CPython + app.py + the SDK,
# found on the python path; its glue imports the bindings generated here).
componentize_py -d "$root/wit" -w plugin bindings . >/dev/null
componentize_py -d "$root/wit" -w plugin componentize app -p . -p "$root/sdk/python" -o "$out" >/dev/null
echo "built $out ($(wc -c <"$out") bytes)"
