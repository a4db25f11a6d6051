#!/usr/bin/env bash
# Set up (toolchain + wasm target), build, and run the demo: lbx on 127.0.0.1:8080 with the
# embedded least_conn plugin in front of three built-in backends. Ctrl-C stops it.
#
# It runs the release profile, what users run: the access lines it prints show real decision
# times (a debug build's are 10–100 times slower). The first build takes a few minutes.
#
# Run: bash scripts/demo.sh            (pass e.g. --listen 127.0.0.1:8081 to change the port)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "demo: building lbx with the release profile (the first build takes a few minutes)"
exec cargo run --release --quiet -p lbx -- demo "$@"
