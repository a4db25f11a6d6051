#!/usr/bin/env bash
# Regenerate docs/dashboard.png: `lbx demo` (three backends, gamma slow, the embedded least_conn
# plugin) on free ports, four curl loops sending traffic through it, and headless Chromium
# taking a 1280x900 screenshot of the dashboard once it has some history to show.
#
# Run: bash scripts/screenshot-dashboard.sh [SECONDS of traffic before the shot, default 45]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-45}
bash scripts/setup.sh >/dev/null
cargo build --quiet -p lbx
lbx="${CARGO_TARGET_DIR:-target}/debug/lbx"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
listen="127.0.0.1:$(free_port)"
admin="127.0.0.1:$(free_port)"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
"$lbx" demo --listen "$listen" --admin "$admin" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  curl -sf -o /dev/null "http://$admin/" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://$admin/" || { echo "lbx demo did not start" >&2; exit 1; }

# Bounded loops: each stops by itself shortly after the screenshot even if this script dies.
for _ in 1 2 3 4; do
  timeout $((seconds + 30)) bash -c "while :; do curl -s -o /dev/null 'http://$listen/[1-50]'; done" &
  pids+=($!)
done

echo "screenshot-dashboard: $seconds s of traffic through http://$listen, dashboard on http://$admin/"
if ! answers=$({ sleep "$seconds"; echo "screenshot $PWD/docs/dashboard.png"; echo quit; } |
  python3 tests/integration/peers/dashboard_browser.py chromium "http://$admin/"); then
  echo "screenshot-dashboard: the browser failed: $answers" >&2
  exit 1
fi
echo "screenshot-dashboard: wrote docs/dashboard.png"
