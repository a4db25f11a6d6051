#!/usr/bin/env bash
# Fleet mode (issue 20): how soon a change made through one lbx node is in force on another,
# and what following the store costs while changes stream in. Everything runs on 127.0.0.1:
# a real 3-member etcd cluster (the test harness's fast elections, data in a temp dir), one
# nginx serving `return 200` on BACKENDS ports, and two lbx nodes, A and B, in fleet mode
# (A's file seeds the empty store with the BACKENDS backends; B's file has none).
#
# Each round starts all of it afresh (new etcd data, new nodes) and measures:
#   latency  CHANGES changes through A's admin API, one at a time (of each ten: eight weight
#            PATCHes, one POST of a new backend, one DELETE of it). Per change: commit, from
#            sending the request to A until A answers (etcd committed it); write→effect, from
#            sending it until B's `GET /admin/backends/<id>` shows it, B polled every POLL_MS
#            over a kept-alive connection (bench/fleet_driver.py, python3 http.client).
#            p50/p90/p99/max over the changes.
#   idle     (rounds 1..CPU_ROUNDS) IDLE_SECS with no change: utime+stime from /proc of A, B
#            and each etcd member (whole process trees), as % of one core.
#   churn    (rounds 1..CPU_ROUNDS) CHURN_RATE weight PATCHes per minute through A, paced
#            evenly, for CHURN_SECS, the same CPU accounting; failed writes counted; then A and
#            B must agree (both applied the last revision, same backends, URLs, weights).
# Figures: the median over the rounds with the (min–max) after it; `uptime` before each round.
#
# Run: LBX_BIN=path/to/lbx bash bench/fleet.sh      (about 2.5 min per CPU round, 20 s others)
#   LBX_BIN=path           lbx binary (else `cargo build --release -p lbx`)
#   ROUNDS=5               rounds of the latency measurement                           [5]
#   CPU_ROUNDS=3           of those, how many also measure idle and churn CPU           [3]
#   CHANGES=100            changes per latency round                                  [100]
#   BACKENDS=10            backends A's file seeds the store with                      [10]
#   POLL_MS=1              pause between two polls of B                                 [1]
#   CHURN_RATE=1000        changes per minute in the churn window                    [1000]
#   CHURN_SECS=60 IDLE_SECS=60   the two CPU windows                               [60, 60]
#   OUT=path               the report (markdown)  [bench/results/fleet-<UTC date>.md]
#
# Nothing is pinned (the figures are for a shared machine: read the load averages). Every
# process runs under `timeout` (bench/lib.sh's start) and is stopped at the end of its round.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS="${ROUNDS:-5}"
CPU_ROUNDS="${CPU_ROUNDS:-3}"
CHANGES="${CHANGES:-100}"
BACKENDS="${BACKENDS:-10}"
POLL_MS="${POLL_MS:-1}"
CHURN_RATE="${CHURN_RATE:-1000}"
CHURN_SECS="${CHURN_SECS:-60}"
IDLE_SECS="${IDLE_SECS:-60}"
OUT="${OUT:-$ROOT/bench/results/fleet-$(date -u +%Y-%m-%d).md}"
DRIVER="$ROOT/bench/fleet_driver.py"
COMMAND="$(printf '%q ' env ROUNDS="$ROUNDS" CPU_ROUNDS="$CPU_ROUNDS" CHANGES="$CHANGES" BACKENDS="$BACKENDS" \
	POLL_MS="$POLL_MS" CHURN_RATE="$CHURN_RATE" CHURN_SECS="$CHURN_SECS" IDLE_SECS="$IDLE_SECS" \
	LBX_BIN="${LBX_BIN:-}" bash bench/fleet.sh)"
((CPU_ROUNDS <= ROUNDS)) || die "CPU_ROUNDS ($CPU_ROUNDS) must be at most ROUNDS ($ROUNDS)"
((BACKENDS >= 2)) || die "BACKENDS must be at least 2"

need_tools etcd:etcd-server nginx:nginx curl:curl python3:python3
ETCD="$(command -v etcd)"
# No routing plugin: the nodes use the built-in least-in-flight (the fleet path is the same).
if [[ -n "${LBX_BIN:-}" ]]; then
	log "using LBX_BIN=$LBX_BIN (no cargo build)"
else
	log "cargo build --release -p lbx"
	(cd "$ROOT" && cargo build --release -p lbx >&2)
	LBX_BIN="$(cargo_target_dir)/release/lbx"
fi
[[ -x "$LBX_BIN" ]] || die "lbx binary not found or not executable: $LBX_BIN"
bench_init

# The longest any process of one round may live.
ROUND_TTL=$((IDLE_SECS + CHURN_SECS + 600))

# ------------------------------------------------------------------ pieces --
ETCD_TPIDS=()
ETCD_ENDPOINTS=()
# start_etcd DIR: three members m0..m2 on free ports, data in DIR, the test harness's flags.
start_etcd() {
	local dir="$1" ports i initial="" token
	read -r -a ports <<<"$(free_ports 6)"
	token="$(basename "$dir")-$RANDOM"
	ETCD_TPIDS=() ETCD_ENDPOINTS=()
	for i in 0 1 2; do initial+="m$i=http://127.0.0.1:${ports[$((2 * i + 1))]},"; done
	initial="${initial%,}"
	for i in 0 1 2; do
		local client="http://127.0.0.1:${ports[$((2 * i))]}" peer="http://127.0.0.1:${ports[$((2 * i + 1))]}"
		start "etcd-m$i" "" "$ROUND_TTL" "$ETCD" --name "m$i" --data-dir "$dir/m$i" \
			--listen-client-urls "$client" --advertise-client-urls "$client" \
			--listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
			--initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token "$token" \
			--heartbeat-interval 50 --election-timeout 500 --logger zap --log-level warn
		ETCD_TPIDS+=("$START_PID")
		ETCD_ENDPOINTS+=("$client")
	done
	# /health answers 200 once the member has a leader and can serve.
	for i in 0 1 2; do wait_ready "etcd-m$i" "${ETCD_TPIDS[$i]}" "${ETCD_ENDPOINTS[$i]}/health"; done
}

# etcd_leader: which member (m0..m2) leads, as the members say.
etcd_leader() {
	local eps
	eps="$(IFS=,; echo "${ETCD_ENDPOINTS[*]}")"
	ETCDCTL_API=3 etcdctl --endpoints "$eps" endpoint status -w json 2>/dev/null | python3 -c '
import json, sys
for i, s in enumerate(json.load(sys.stdin)):
    if s["Status"]["header"]["member_id"] == s["Status"]["leader"]:
        print(f"m{i}")' || echo "?"
}

BACKEND_PORTS=()
# start_backends DIR: one nginx, 1 worker, `return 200` on BACKENDS + 1 ports (the last one
# is the URL of the backends the latency test adds).
start_backends() {
	local dir="$1" p
	read -r -a BACKEND_PORTS <<<"$(free_ports $((BACKENDS + 1)))"
	mkdir -p "$dir"
	{
		nginx_head "$dir" 1 1024
		echo "http {"
		nginx_temp_paths "$dir"
		echo "    access_log off;"
		echo "    server {"
		for p in "${BACKEND_PORTS[@]}"; do echo "        listen 127.0.0.1:$p;"; done
		echo "        location / { return 200 \"ok\\n\"; }"
		echo "    }"
		echo "}"
	} >"$dir/nginx.conf"
	nginx -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" || die "backend nginx config invalid"
	start backends "" "$ROUND_TTL" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
	BACKENDS_TPID=$START_PID
	wait_ready backends "$START_PID" "http://127.0.0.1:${BACKEND_PORTS[0]}/"
}

# node_config ID SEED: a node's file: [fleet] (defaults but for node_id and prefix), then,
# with SEED=1, the BACKENDS backends b1..bN that seed the empty store.
node_config() {
	local id="$1" seed="$2" eps="" e i
	for e in "${ETCD_ENDPOINTS[@]}"; do eps+="\"$e\", "; done
	printf '[fleet]\nendpoints = [%s]\nnode_id = "%s"\nprefix = "/lbx-bench"\n' "${eps%, }" "$id"
	if [[ "$seed" == 1 ]]; then
		for ((i = 1; i <= BACKENDS; i++)); do
			printf '\n[[backend]]\nid = "b%d"\nurl = "http://127.0.0.1:%s"\n' "$i" "${BACKEND_PORTS[$((i - 1))]}"
		done
	fi
}

# start_node NAME SEED: lbx NAME (a or b) in fleet mode, its file alone in a directory (lbx
# watches its config file's directory; its state file goes beside it). Sets NODE_TPID[NAME],
# NODE_ADMIN[NAME].
declare -A NODE_TPID NODE_ADMIN
start_node() {
	local name="$1" seed="$2" dir="$TMP/round/node-$1" listen admin
	mkdir -p "$dir"
	node_config "node-$name" "$seed" >"$dir/lbx.toml"
	read -r listen admin <<<"$(free_ports 2)"
	start "node-$name" "" "$ROUND_TTL" env RUST_LOG="${RUST_LOG:-info}" "$LBX_BIN" run --config "$dir/lbx.toml" \
		--listen "127.0.0.1:$listen" --admin "127.0.0.1:$admin"
	NODE_TPID[$name]=$START_PID
	NODE_ADMIN[$name]="127.0.0.1:$admin"
	wait_ready "node-$name" "$START_PID" "http://127.0.0.1:$admin/admin/backends"
}

# wait_fleet: both nodes connected and listed in each other's GET /admin/fleet, each with the
# seeded backends. (Not "every node in_sync": a node that listed the store after the other's
# status write sees the other as `behind` until the next shared change; see the report.)
wait_fleet() {
	local deadline=$((SECONDS + 20))
	until python3 - "${NODE_ADMIN[a]}" "${NODE_ADMIN[b]}" "$BACKENDS" <<'EOF'; do
import json, sys, urllib.request
a, b, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
get = lambda addr, path: json.load(urllib.request.urlopen(f"http://{addr}{path}", timeout=2))
fleets = [get(x, "/admin/fleet") for x in (a, b)]
ok = all(f["connected"] and len(f["nodes"]) == 2 for f in fleets)
ok = ok and all(len(get(x, "/admin/backends")["backends"]) == n for x in (a, b))
sys.exit(0 if ok else 1)
EOF
		if ((SECONDS >= deadline)); then
			curl -sS "http://${NODE_ADMIN[b]}/admin/fleet" >&2 || true
			tail -n 20 "$TMP/node-a.log" "$TMP/node-b.log" >&2 || true
			die "the fleet did not get in sync within 20 s"
		fi
		sleep 0.2
	done
}

# ticks_now: "A B m0 m1 m2" CPU ticks of the round's processes (process trees).
ticks_now() {
	echo "$(cpu_ticks "${NODE_TPID[a]}") $(cpu_ticks "${NODE_TPID[b]}") $(cpu_ticks "${ETCD_TPIDS[0]}") $(cpu_ticks "${ETCD_TPIDS[1]}") $(cpu_ticks "${ETCD_TPIDS[2]}")"
}

# cpu_window LABEL SECONDS CMD...: run CMD (or sleep SECONDS with none) and print
# "wall_s ticksA ticksB ticksM0 ticksM1 ticksM2" over it.
cpu_window() {
	local secs="$2" before after t0 t1
	shift 2
	read -r -a before <<<"$(ticks_now)"
	t0="$(date +%s.%N)"
	if (($#)); then "$@"; else sleep "$secs"; fi
	t1="$(date +%s.%N)"
	read -r -a after <<<"$(ticks_now)"
	printf '%s' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
	for i in 0 1 2 3 4; do printf ' %d' $((after[i] - before[i])); done
	echo
}

# pct TICKS WALL: % of one core.
pct() { awk -v t="$1" -v w="$2" -v hz="$TICK" 'BEGIN { printf "%.2f", t / hz / w * 100 }'; }

# ------------------------------------------------------------------- rounds --
RAW="$TMP/raw"
mkdir -p "$RAW" "$(dirname "$OUT")"
LOADS=()
LEADERS=()
for ((r = 1; r <= ROUNDS; r++)); do
	LOADS[r]="$(uptime | sed 's/.*load average: //')"
	log "== round $r/$ROUNDS (load average ${LOADS[r]})"
	rm -rf "$TMP/round"
	mkdir -p "$TMP/round"
	start_etcd "$TMP/round/etcd"
	start_backends "$TMP/round/nginx"
	start_node a 1
	start_node b 0
	wait_fleet
	sleep 1
	for n in a b; do curl -fsS "http://${NODE_ADMIN[$n]}/admin/fleet" >"$RAW/fleet-start-$r-$n.json"; done
	LEADERS[r]="$(etcd_leader)"
	ids="$(seq -s, -f 'b%g' 1 "$BACKENDS")"
	add_url="http://127.0.0.1:${BACKEND_PORTS[$BACKENDS]}"

	log "round $r: $CHANGES changes through A, watching B"
	python3 "$DRIVER" latency "${NODE_ADMIN[a]}" "${NODE_ADMIN[b]}" "$ids" "$add_url" "$CHANGES" "$POLL_MS" "$RAW/latency-$r.json"

	if ((r <= CPU_ROUNDS)); then
		sleep 2
		log "round $r: idle ${IDLE_SECS}s"
		cpu_window idle "$IDLE_SECS" >"$RAW/idle-$r.txt"
		log "round $r: churn, $CHURN_RATE changes/min for ${CHURN_SECS}s"
		cpu_window churn "$CHURN_SECS" python3 "$DRIVER" churn "${NODE_ADMIN[a]}" "$ids" "$CHURN_RATE" "$CHURN_SECS" "$RAW/churn-$r.json" >"$RAW/churn-$r.txt"
		last="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["last_revision"])' "$RAW/churn-$r.json")"
		python3 "$DRIVER" agree "${NODE_ADMIN[a]}" "${NODE_ADMIN[b]}" "$last" 10 >"$RAW/agree-$r.json" || true
		log "round $r: $(cat "$RAW/agree-$r.json")"
	fi
	sleep 1
	for n in a b; do curl -fsS "http://${NODE_ADMIN[$n]}/admin/fleet" >"$RAW/fleet-end-$r-$n.json" || true; done
	# Keep the nodes' and members' logs of the round for a look afterwards.
	for t in "${NODE_TPID[a]}" "${NODE_TPID[b]}" "${ETCD_TPIDS[@]}" "$BACKENDS_TPID"; do stop "$t"; done
	mkdir -p "$RAW/logs-$r"
	cp "$TMP"/node-?.log "$TMP"/etcd-m?.log "$RAW/logs-$r/" 2>/dev/null || true
done

# ------------------------------------------------------------------- report --
# field FILE EXPR: a value out of a JSON file (python expression on `d`).
field() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); v = eval(sys.argv[2]); print("n/a" if v is None else v)' "$1" "$2"; }

values() { # values KIND EXPR: EXPR over each round's KIND file
	local kind="$1" expr="$2" r n
	n=$ROUNDS
	[[ "$kind" == latency ]] || n=$CPU_ROUNDS
	for ((r = 1; r <= n; r++)); do field "$RAW/$kind-$r.json" "$expr"; done
}

# cpu_values KIND COLUMN: % of one core in each CPU round (COLUMN 1..5: A B m0 m1 m2, or
# "etcd": the three members together).
cpu_values() {
	local kind="$1" col="$2" r w a
	for ((r = 1; r <= CPU_ROUNDS; r++)); do
		read -r -a a <<<"$(cat "$RAW/$kind-$r.txt")"
		w="${a[0]}"
		if [[ "$col" == etcd ]]; then pct $((a[3] + a[4] + a[5])) "$w"; else pct "${a[$col]}" "$w"; fi
		echo
	done
}

# b_ms_per_change MODE: CPU ms of B per change in each churn round; MODE net subtracts B's
# idle rate of the same round over the churn window.
b_ms_per_change() {
	local mode="$1" r c i n
	for ((r = 1; r <= CPU_ROUNDS; r++)); do
		read -r -a c <<<"$(cat "$RAW/churn-$r.txt")"
		read -r -a i <<<"$(cat "$RAW/idle-$r.txt")"
		n="$(field "$RAW/churn-$r.json" 'd["changes"] - d["failed"]')"
		awk -v t="${c[2]}" -v w="${c[0]}" -v it="${i[2]}" -v iw="${i[0]}" -v n="$n" -v hz="$TICK" -v m="$mode" 'BEGIN {
			x = t / hz; if (m == "net") x -= it / hz / iw * w; printf "%.2f\n", x * 1000 / n }'
	done
}

mr() { median_range "$1" "${@:2}"; }

{
	echo "# Fleet mode: write→effect latency and CPU under churn ($(date -u +%Y-%m-%d))"
	echo
	echo "- command: \`$COMMAND\`"
	echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), shared with other work; nothing pinned"
	echo "- etcd: $("$ETCD" --version | head -n1 | sed 's/etcd Version: //') (Debian etcd-server), 3 members on 127.0.0.1, fresh data dirs in /tmp each round, \`--heartbeat-interval 50 --election-timeout 500\` (as tests/integration/support/etcd.rs)"
	echo "- lbx: \`$LBX_BIN\` (sha256 $(sha256_short "$LBX_BIN")), \`lbx run --config FILE --listen … --admin …\`, no routing plugin (built-in least-in-flight), \`[fleet]\` defaults but \`node_id\` and \`prefix = \"/lbx-bench\"\`; node A's file seeds the store with $BACKENDS backends, node B's has none"
	echo "- backends: one nginx (1 worker, access log off) answering \`return 200\` on $((BACKENDS + 1)) ports (the last one for the backends the latency test adds); no client traffic goes through lbx"
	echo "- each round starts everything afresh (etcd cluster, nginx, nodes A and B); rounds 1–$CPU_ROUNDS also measure idle and churn CPU, after the latency test"
	echo "- figures: median over the rounds, (min–max) after it"
	echo
	echo "## Write → effect (node A's admin API → node B's \`GET /admin/backends/<id>\`)"
	echo
	echo "$CHANGES changes per round, one at a time (20 ms apart), of each ten: 8 weight PATCHes, 1 POST (new backend), 1 DELETE (of it). B polled every $POLL_MS ms over one kept-alive connection from the moment the request to A leaves. *commit*: until A answered \`{\"revision\": N}\`. Milliseconds."
	echo
	echo "| figure | p50 | p90 | p99 | max |"
	echo "|---|---:|---:|---:|---:|"
	for what in effect commit; do
		label="write → effect on B"
		[[ "$what" == commit ]] && label="commit (A's answer)"
		row="| $label "
		for p in p50 p90 p99 max; do row+="| $(mr %.1f $(values latency "d['$what']['$p']")) "; done
		echo "$row|"
	done
	for kind in weight add remove; do
		row="| write → effect, $kind only "
		for p in p50 p90 p99 max; do row+="| $(mr %.1f $(values latency "d['by_kind']['$kind']['effect']['$p']")) "; done
		echo "$row|"
	done
	echo
	echo "failed changes (error answer, or not seen on B within 30 s), summed over the rounds: $(sum_values $(values latency "d['failed']"))"
	echo
	echo "Per round:"
	echo
	echo "| round | load avg before (1, 5, 15 min) | etcd leader | effect p50 | p90 | p99 | max | commit p50 | p99 | max | failed |"
	echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for ((r = 1; r <= ROUNDS; r++)); do
		f="$RAW/latency-$r.json"
		echo "| $r | ${LOADS[r]} | ${LEADERS[r]} | $(field "$f" "round(d['effect']['p50'], 1)") | $(field "$f" "round(d['effect']['p90'], 1)") | $(field "$f" "round(d['effect']['p99'], 1)") | $(field "$f" "round(d['effect']['max'], 1)") | $(field "$f" "round(d['commit']['p50'], 1)") | $(field "$f" "round(d['commit']['p99'], 1)") | $(field "$f" "round(d['commit']['max'], 1)") | $(field "$f" "d['failed']") |"
	done
	echo
	echo "Node B's own log as a check of the poller: the time from sending the request to A until B logged \`fleet state applied revision=N\` for the change's revision (same clock; the poller cannot see a change before B applied it)."
	echo
	python3 "$DRIVER" crosscheck "$RAW" "$ROUNDS"
	echo
	echo "## How each node sees the fleet (GET /admin/fleet), 1 s after the fleet formed and at the end of each round"
	echo
	echo "| round | when | asked | shared_revision | node-a: state, applied, lag | node-b: state, applied, lag |"
	echo "|---:|---|---|---:|---|---|"
	for ((r = 1; r <= ROUNDS; r++)); do
		for when in start end; do
			for n in a b; do
				f="$RAW/fleet-$when-$r-$n.json"
				[[ -s "$f" ]] || continue
				python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
seen = {x["node"]: "%s, %s, %s" % (x.get("state"), x.get("applied_revision"), x.get("lag")) for x in d["nodes"]}
print("| %s | %s | node-%s | %s | %s | %s |" % (sys.argv[2], sys.argv[3], sys.argv[4], d["shared_revision"], seen.get("node-a", "absent"), seen.get("node-b", "absent")))' "$f" "$r" "$when" "$n"
			done
		done
	done
	if ((CPU_ROUNDS > 0)); then
		echo
		echo "## CPU: idle and under churn"
		echo
		echo "utime + stime from /proc (whole process trees), as % of one core over the window. Idle: ${IDLE_SECS} s with no change. Churn: $CHURN_RATE weight PATCHes per minute through A, paced evenly, for ${CHURN_SECS} s (the seeded backends in turn). $CPU_ROUNDS rounds."
		echo
		echo "| process | idle, % of a core | churn, % of a core |"
		echo "|---|---:|---:|"
		for c in "1:node A (takes the writes)" "2:node B (applies them)" "3:etcd m0" "4:etcd m1" "5:etcd m2" "etcd:etcd, 3 members together"; do
			echo "| ${c#*:} | $(mr %.2f $(cpu_values idle "${c%%:*}")) | $(mr %.2f $(cpu_values churn "${c%%:*}")) |"
		done
		echo
		echo "- node B, CPU ms per change applied: $(mr %.2f $(b_ms_per_change raw)) (all of B's CPU in the churn window / changes); net of its idle rate: $(mr %.2f $(b_ms_per_change net))"
		echo "- changes sent per round: $(values churn "d['changes']" | paste -sd/ -); failed writes: $(sum_values $(values churn "d['failed']")) (summed over the rounds); sent more than one interval late: $(values churn "d['late']" | paste -sd/ -)"
		echo "- commit latency under churn (A's answer), ms: p50 $(mr %.1f $(values churn "d['commit']['p50']")), p99 $(mr %.1f $(values churn "d['commit']['p99']")), max $(mr %.1f $(values churn "d['commit']['max']"))"
		echo "- A and B agree after the churn (both applied the last revision; same backends, URLs, weights, labels, drain): $(for ((r = 1; r <= CPU_ROUNDS; r++)); do field "$RAW/agree-$r.json" "'yes' if d['agree'] else 'NO'" 2>/dev/null || echo '?'; done | paste -sd/ -) (round by round)"
		echo
		echo "Per round (ticks of $((1000 / TICK)) ms; window in seconds):"
		echo
		echo "| round | window | seconds | A | B | m0 | m1 | m2 | etcd leader at start |"
		echo "|---:|---|---:|---:|---:|---:|---:|---:|---|"
		for ((r = 1; r <= CPU_ROUNDS; r++)); do
			for k in idle churn; do
				read -r -a a <<<"$(cat "$RAW/$k-$r.txt")"
				echo "| $r | $k | ${a[0]} | ${a[1]} | ${a[2]} | ${a[3]} | ${a[4]} | ${a[5]} | ${LEADERS[r]} |"
			done
		done
	fi
} >"$OUT"

# The raw per-change records and the last round's logs, beside the report.
RAW_KEEP="${OUT%.md}-raw"
rm -rf "$RAW_KEEP"
cp -a "$RAW" "$RAW_KEEP"
log "report: $OUT (raw data: $RAW_KEEP)"
cat "$OUT"
