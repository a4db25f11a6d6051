#!/usr/bin/env bash
# Hot-swap figures for lbx (release build), reported as the issue asks:
#   1. requests/s under wrk with no swap, then with the plugin file replaced once a second
#      (atomic rename, alternating round_robin and least_conn): the dip is their ratio;
#   2. swap-to-effect: time from the rename to /admin/plugin reporting the new sha256 (measured
#      here only: the hot-swap test checks that a swap takes effect, not how fast);
#   3. memory: RSS before and after 100 more swaps through POST /admin/plugin/reload.
#
# Run: bash bench/swap.sh            (from anywhere)
#   DURATION=10s      wrk time of each of the two runs                         [10s]
#   CONNECTIONS=64    wrk connections                                            [64]
#   LBX_BIN=path      use this lbx binary, skip `cargo build --release -p lbx`  [build]
#
# Pinning: lbx and its two `lbx backend` backends on core 0, wrk on core 1. Everything is on
# 127.0.0.1; servers run under `timeout` and stop by themselves. Prints the figures on stdout.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
SECONDS_RUN="$(to_seconds "$DURATION")"

need_tools wrk:wrk curl:curl taskset:util-linux pgrep:procps python3:python3
lbx_binary
bash "$ROOT/plugins/build.sh" >/dev/null # round_robin.wasm too
bench_init

read -r P_B1 P_B2 P_LBX P_ADMIN <<<"$(free_ports 4)"
TTL=$((SECONDS_RUN * 3 + 120))

cp "$ROOT/plugins/round_robin.wasm" "$TMP/plugin.wasm"
start b1 0 "$TTL" env RUST_LOG=warn "$LBX_BIN" backend --listen "127.0.0.1:$P_B1" --name b1
start b2 0 "$TTL" env RUST_LOG=warn "$LBX_BIN" backend --listen "127.0.0.1:$P_B2" --name b2
start lbx 0 "$TTL" env RUST_LOG=warn "$LBX_BIN" run --plugin "$TMP/plugin.wasm" \
	--backend "http://127.0.0.1:$P_B1" --backend "http://127.0.0.1:$P_B2" \
	--listen "127.0.0.1:$P_LBX" --admin "127.0.0.1:$P_ADMIN" --workers 1
wait_ready lbx "$START_PID" "http://127.0.0.1:$P_LBX/"
LBX_PID="$(server_pid "$START_PID")"

sha() { sha256sum "$1" | cut -d' ' -f1; }
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
WRK=(wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_RUN}s" "http://127.0.0.1:$P_LBX/")

run_client 1 2 "$TMP/warmup.txt" wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$P_LBX/"
log "steady: ${WRK[*]}"
run_client 1 "$SECONDS_RUN" "$TMP/steady.txt" "${WRK[@]}"

# The same load while the file is replaced every second.
log "swapping once a second: ${WRK[*]}"
pin 1
"${PIN[@]}" timeout "$((SECONDS_RUN + 30))" "${WRK[@]}" >"$TMP/swapping.txt" &
CLIENT_PID=$!
sleep 0.5
: >"$TMP/effects.txt"
for i in $(seq 1 $((SECONDS_RUN - 1))); do
	if ((i % 2)); then next=least_conn; else next=round_robin; fi
	cp "$ROOT/plugins/$next.wasm" "$TMP/plugin.wasm.new"
	want=$(sha "$TMP/plugin.wasm.new")
	t0=$(date +%s%N)
	mv "$TMP/plugin.wasm.new" "$TMP/plugin.wasm"
	until curl -s "http://127.0.0.1:$P_ADMIN/admin/plugin" | grep -q "$want"; do sleep 0.005; done
	echo $((($(date +%s%N) - t0) / 1000000)) >>"$TMP/effects.txt"
	sleep 0.5
done
wait "$CLIENT_PID"
CLIENT_PID=

# Memory over 100 swaps through the admin API.
rss_before=$(rss_kb "$LBX_PID")
for i in $(seq 1 100); do
	if ((i % 2)); then next=least_conn; else next=round_robin; fi
	cp "$ROOT/plugins/$next.wasm" "$TMP/plugin.wasm.new" && mv "$TMP/plugin.wasm.new" "$TMP/plugin.wasm"
	curl -s -X POST "http://127.0.0.1:$P_ADMIN/admin/plugin/reload" >/dev/null
done
sleep 1
rss_after=$(rss_kb "$LBX_PID")

steady=$(rps "$TMP/steady.txt")
swapping=$(rps "$TMP/swapping.txt")
errors=$(grep -h "Non-2xx\|Socket errors" "$TMP/steady.txt" "$TMP/swapping.txt" || true)
echo "requests/s steady:            $steady"
echo "requests/s with a swap per s: $swapping  (ratio $(ratio "$swapping" "$steady"))"
echo "swap-to-effect ms (each swap): $(tr '\n' ' ' <"$TMP/effects.txt")"
echo "RSS before 100 swaps: $rss_before KiB, after: $rss_after KiB"
echo "wrk errors: ${errors:-none}"
