#!/usr/bin/env bash
# Set up (toolchain + wasm target), build, and run the demo: lbx on 127.0.0.1:8080 with the
# embedded least_conn plugin in front of three built-in backends. Ctrl-C stops it.
#
# Run: bash scripts/demo.sh            (pass e.g. --listen 127.0.0.1:8081 to change the port)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --quiet -p lbx -- demo "$@"
