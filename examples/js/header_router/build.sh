#!/usr/bin/env bash
# Build the JavaScript header router into a Wasm component for lbx.
#
# Run: bash examples/js/header_router/build.sh [OUT.wasm]
#      (default OUT: examples/js/header_router/header_router.wasm)
# Needs node and npm; the first run installs componentize-js (pinned in package.json) into
# examples/js/header_router/node_modules (~20 s), a build then takes ~20 s.
# package.json also pins @bytecodealliance/preview2-shim: componentize-js 0.22.0 imports it at
# run time but lists it only as a dev dependency of its own.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$here/header_router.wasm}"

for tool in node npm; do
	command -v "$tool" >/dev/null 2>&1 || { echo "$tool not found: install Node.js (apt-get install -y nodejs npm)" >&2; exit 1; }
done
cd "$here"
if [[ ! -d node_modules/@bytecodealliance/componentize-js ]]; then
	# `ci` installs exactly what package-lock.json pins and never rewrites it.
	npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
node build.mjs router.js "$root/wit/v0.1" "$out"
