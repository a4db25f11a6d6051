#!/usr/bin/env bash
# Hot-swap figures for lbx (release build), reported as the issue asks:
#   1. requests/s under wrk with no swap, then with the plugin file replaced once a second
#      (atomic rename, alternating round_robin and least_conn): the dip is their ratio;
#   2. swap-to-effect: time from the rename to /admin/plugin reporting the new sha256;
#   3. memory: RSS before and after 100 more swaps through POST /admin/plugin/reload.
#
# Run: bash bench/swap.sh            (DURATION=10s CONNECTIONS=64 to change the load)
# Everything is on 127.0.0.1; servers run under `timeout` and stop by themselves.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
SECONDS_RUN="${DURATION%s}"
LBX_BIN="${LBX_BIN:-$ROOT/target/release/lbx}"
PIN_PROXY=(taskset -c 0)
PIN_WRK=(taskset -c 1)
[[ "$(nproc)" -ge 2 ]] || { PIN_PROXY=(); PIN_WRK=(); }

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
if [[ -z "${LBX_BIN_GIVEN:-}" && ! -x "$LBX_BIN" ]]; then
	cargo build --release -p lbx --manifest-path "$ROOT/Cargo.toml"
fi
bash "$ROOT/plugins/build.sh" >/dev/null

WORK="$(mktemp -d)"
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P_B1=$(free_port); P_B2=$(free_port); P_LBX=$(free_port); P_ADMIN=$(free_port)
TTL=$((SECONDS_RUN * 3 + 120))

cp "$ROOT/plugins/round_robin.wasm" "$WORK/plugin.wasm"
"${PIN_PROXY[@]}" timeout "$TTL" env RUST_LOG=warn "$LBX_BIN" backend --listen "127.0.0.1:$P_B1" --name b1 &
"${PIN_PROXY[@]}" timeout "$TTL" env RUST_LOG=warn "$LBX_BIN" backend --listen "127.0.0.1:$P_B2" --name b2 &
"${PIN_PROXY[@]}" timeout "$TTL" env RUST_LOG=warn "$LBX_BIN" run --plugin "$WORK/plugin.wasm" \
	--backend "http://127.0.0.1:$P_B1" --backend "http://127.0.0.1:$P_B2" \
	--listen "127.0.0.1:$P_LBX" --admin "127.0.0.1:$P_ADMIN" --workers 1 &
LBX_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$P_LBX/" >/dev/null && break; sleep 0.1; done
LBX_PID=$(pgrep -f -- "--listen 127.0.0.1:$P_LBX" | tail -1)

sha() { sha256sum "$1" | cut -d' ' -f1; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$LBX_PID/status"; }
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }

"${PIN_WRK[@]}" wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$P_LBX/" >/dev/null
"${PIN_WRK[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$P_LBX/" >"$WORK/steady.txt"

# The same load while the file is replaced every second.
"${PIN_WRK[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$P_LBX/" >"$WORK/swapping.txt" &
WRK=$!
sleep 0.5
: >"$WORK/effects.txt"
for i in $(seq 1 $((SECONDS_RUN - 1))); do
	if ((i % 2)); then next=least_conn; else next=round_robin; fi
	cp "$ROOT/plugins/$next.wasm" "$WORK/plugin.wasm.new"
	want=$(sha "$WORK/plugin.wasm.new")
	start=$(date +%s%N)
	mv "$WORK/plugin.wasm.new" "$WORK/plugin.wasm"
	until curl -s "http://127.0.0.1:$P_ADMIN/admin/plugin" | grep -q "$want"; do sleep 0.005; done
	echo $((($(date +%s%N) - start) / 1000000)) >>"$WORK/effects.txt"
	sleep 0.5
done
wait "$WRK"

# Memory over 100 swaps through the admin API.
rss_before=$(rss_kib)
for i in $(seq 1 100); do
	if ((i % 2)); then next=least_conn; else next=round_robin; fi
	cp "$ROOT/plugins/$next.wasm" "$WORK/plugin.wasm.new" && mv "$WORK/plugin.wasm.new" "$WORK/plugin.wasm"
	curl -s -X POST "http://127.0.0.1:$P_ADMIN/admin/plugin/reload" >/dev/null
done
sleep 1
rss_after=$(rss_kib)

steady=$(rps "$WORK/steady.txt"); swapping=$(rps "$WORK/swapping.txt")
errors=$(grep -h "Non-2xx\|Socket errors" "$WORK/steady.txt" "$WORK/swapping.txt" || true)
echo "requests/s steady:            $steady"
echo "requests/s with a swap per s: $swapping  (ratio $(python3 -c "print(round($swapping/$steady, 3))"))"
echo "swap-to-effect ms (each swap): $(tr '\n' ' ' <"$WORK/effects.txt")"
echo "RSS before 100 swaps: $rss_before KiB, after: $rss_after KiB"
echo "wrk errors: ${errors:-none}"
