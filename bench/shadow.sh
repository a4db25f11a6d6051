#!/usr/bin/env bash
# What a shadow plugin costs the live traffic: lbx with a `[[plugin.shadow]]` against the same
# lbx binary without one, in bench/compare.sh's A/B ("lbx" has the shadow, "lbx (base)" has
# none), HTTP/1.1 keep-alive, medians of ROUNDS alternating rounds with their min–max.
#
# Cases (CASES, space-separated):
#   shadow10       round_robin.wasm shadowing the live least_conn.wasm on 10% of requests: the
#                  CPU per request it adds (the issue's bound: at most 5%)
#   loop           a shadow that never returns (the test router with mode = "loop") on 10%,
#                  with the default breaker (5 failures pause it for 30 s): p99 with and without
#   loop-unpaused  the same with `disable_after_failures = 0`, so it is never paused: its worker
#                  spends every moment in a loop cut off by the 5 ms deadline, the worst a
#                  shadow can do to the proxy's CPU
#
# Run: bash bench/shadow.sh        (from anywhere; about 30 s per round and case, plus a build)
#   CASES="shadow10 loop loop-unpaused"   which cases                          [all three]
#   ROUNDS=5                              alternating rounds per case                   [5]
#   LBX_BIN=path                          lbx binary, skip `cargo build --release -p lbx`
#   DURATION, WARMUP, CONNECTIONS, ...    passed on to bench/compare.sh (see its header)
#
# Before measuring, each case's config is checked on a live lbx with its admin API on: after
# 400 requests the shadow must report decisions (or timeouts, for the looping one), so a
# shadow that silently did not run cannot pass for a free one. Reports: one compare-*.md per
# case in bench/results/, and a summary on stdout.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CASES="${CASES:-shadow10 loop loop-unpaused}"
export ROUNDS="${ROUNDS:-5}"

need_tools wrk:wrk curl:curl taskset:util-linux python3:python3
lbx_binary
bash "$ROOT/plugins/build.sh" >/dev/null # round_robin.wasm, least_conn.wasm
# host/build.rs builds the test router (it can loop on request) beside the shipped plugins.
LOOPER="$(cargo_target_dir)/wasm-plugins/wasm32-wasip2/plugin/test_router.wasm"
bench_init

# case_config CASE FILE: write the lbx config for CASE.
case_config() {
	local shadow config="" breaker=""
	case "$1" in
	shadow10) shadow="$ROOT/plugins/round_robin.wasm" ;;
	loop) shadow="$LOOPER" config='mode = "loop"' ;;
	loop-unpaused) shadow="$LOOPER" config='mode = "loop"' breaker="disable_after_failures = 0" ;;
	*) die "unknown case '$1' (shadow10 loop loop-unpaused)" ;;
	esac
	[[ -f "$shadow" ]] || die "shadow plugin not found: $shadow (cargo build --release -p lbx builds it)"
	cat >"$2" <<EOF
[plugin]
path = "$PLUGIN"
$breaker

[[plugin.shadow]]
name = "candidate"
path = "$shadow"
sample = 0.1
[plugin.shadow.config]
$config
EOF
}

# check_runs CASE FILE: start lbx with FILE and its admin API, send 400 requests, and require
# the shadow to have seen samples.
check_runs() {
	local port admin backend tpid report
	read -r port admin backend <<<"$(free_ports 3)"
	start "check-$1-backend" "" 60 env RUST_LOG=warn "$LBX_BIN" backend --listen "127.0.0.1:$backend" --name b1
	local btpid=$START_PID
	wait_ready "check-$1-backend" "$btpid" "http://127.0.0.1:$backend/"
	start "check-$1" "" 60 env RUST_LOG=warn "$LBX_BIN" run --config "$2" --listen "127.0.0.1:$port" \
		--admin "127.0.0.1:$admin" --backend "http://127.0.0.1:$backend"
	tpid=$START_PID
	wait_ready "check-$1" "$tpid" "http://127.0.0.1:$port/"
	for _ in $(seq 400); do echo "url = \"http://127.0.0.1:$port/\""; done |
		curl -fsS --parallel --parallel-max 4 -K - -o /dev/null || die "$1: requests through lbx failed"
	sleep 0.5
	report="$(curl -fsS "http://127.0.0.1:$admin/admin/plugin/shadow")"
	stop "$tpid"
	stop "$btpid"
	python3 - "$1" "$report" <<'EOF' || die "$1: the shadow did not run (report above)"
import json, sys
case, report = sys.argv[1], json.loads(sys.argv[2])
s = next(s for s in report["shadows"] if s["name"] == "candidate")
seen = s["decisions"] + s["paused"] + s["dropped"]
print(f"{case}: shadow saw {seen} of 400 requests: {s['decisions']} decided, "
      f"{s['paused']} paused, {s['dropped']} dropped, errors {s['errors']}", file=sys.stderr)
sys.exit(0 if seen >= 10 else 1)
EOF
}

# Each config in a directory of its own: lbx watches its config file's directory, and the
# benchmark's logs and outputs (in $TMP) must not wake that watcher.
for c in $CASES; do
	mkdir -p "$TMP/config-$c"
	config="$TMP/config-$c/lbx.toml"
	case_config "$c" "$config"
	check_runs "$c" "$config"
done

summary=()
for c in $CASES; do
	log "== $c: lbx with the shadow (lbx) against lbx without it (lbx (base)), $ROUNDS rounds"
	out="$TMP/$c.out"
	LBX_BIN="$LBX_BIN" LBX_BASE_BIN="$LBX_BIN" LBX_CONFIG="$TMP/config-$c/lbx.toml" PROXIES="lbx lbx_base" \
		SCENARIOS=http1 BASELINE=0 bash "$ROOT/bench/compare.sh" | tee "$out"
	summary+=("$c: $(grep -m1 '^| http1 |' "$out" || echo '(no A/B row)')")
done
echo
echo "| case | req/s shadow/none | CPU/request shadow/none | p99 shadow/none |"
echo "|---|---:|---:|---:|"
for line in "${summary[@]}"; do echo "| ${line%%:*} ${line#*: | http1 }"; done
