#!/usr/bin/env bash
# LLM inference routing: which replica serves a request, per routing policy, measured on
# simulated vLLM replicas (`lbx backend --llm`, model in README "LLM replica simulator") driven
# by the same seeded workload (`lbx llm-load`, model in README "LLM workload").
#
#   bash bench/llm.sh                      # the README's table and plot
#   REPLICAS=4 LOADS="0.5 0.8" DURATION=20 POLICIES="least_conn llm_router" bash bench/llm.sh
#
# For every load (a fraction of the pool's capacity) and every policy, same seed: fresh replicas
# (cold caches), lbx with the policy's plugin, one open-loop run of the workload. Reported per
# policy and load: TTFT p50/p99, end-to-end p50/p99, output tokens/s, prefix-cache hit rate
# (cached prompt tokens / prompt tokens), requests shed, lbx's CPU µs per request and the
# plugin's µs per decision (lbx_plugin_decision_seconds).
#
# The pool's capacity is measured first, not assumed: least_conn under an offered load well
# above what the pool can serve (CAPACITY_PROBE_RATE), its completed requests/s over the run.
# Set CAPACITY (req/s) to skip that step.
#
# Writes bench/results/llm-<date>.{json,md,png} (RESULTS to change the prefix); the plot needs
# matplotlib (scripts/setup.sh installs it).
#
# The replicas: the simulator's Llama-3.1-8B-on-H100 step times (BLIS, cited in the README's
# "LLM replica simulator"), but a memory-constrained engine — MAX_RUNNING (8) requests at once
# and KV_BLOCKS (2048 blocks of 16 tokens: 32k tokens) — so that four replicas streaming every
# token as an event fit this 2-core machine in real time, and so that which replica holds a
# conversation's prefix matters: a replica cannot cache every conversation.
#
# Environment: REPLICAS (4), MAX_RUNNING (8), KV_BLOCKS (2048), SPEEDUP (simulator time scale,
# 1), DURATION (seconds per run, 30), CONVERSATIONS (48), SYSTEM_PROMPTS (4 distinct shared
# system prompts), SYSTEM_PROMPT_TOKENS (1000 each, the interactive-chat profile's), LOADS ("0.5 0.8 0.95"), POLICIES
# ("round_robin least_conn p2c_ewma consistent_hash llm_router"), SEED (7), BODY_PREFIX
# ("64KiB": the router reads the whole conversation), LLM_ROUTER_CONFIG (TOML lines for its
# [plugin.config]; default none), LBX_BIN (else cargo build --release), LOGS (a directory: keep
# each run's JSON access log, with backend and first_byte_ms per request, and each replica's
# final /metrics there, to see where the slow requests went).

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPLICAS="${REPLICAS:-4}"
MAX_RUNNING="${MAX_RUNNING:-8}"
KV_BLOCKS="${KV_BLOCKS:-2048}"
export SPEEDUP="${SPEEDUP:-1}"
DURATION="${DURATION:-30}"
CONVERSATIONS="${CONVERSATIONS:-48}"
SYSTEM_PROMPTS="${SYSTEM_PROMPTS:-4}"
SYSTEM_PROMPT_TOKENS="${SYSTEM_PROMPT_TOKENS:-1000}"
LOADS="${LOADS:-0.5 0.8 0.95}"
POLICIES="${POLICIES:-round_robin least_conn p2c_ewma consistent_hash llm_router}"
SEED="${SEED:-7}"
BODY_PREFIX="${BODY_PREFIX:-64KiB}"
MODEL="meta-llama/Llama-3.1-8B-Instruct"
CAPACITY_PROBE_RATE="${CAPACITY_PROBE_RATE:-}"
RESULTS="${RESULTS:-$ROOT/bench/results/llm-$(date -u +%Y-%m-%d)}"
# lbx scrapes the replicas this often (100 ms of model time, at least 10 ms).
SCRAPE_MS="${SCRAPE_MS:-$((100 / SPEEDUP > 10 ? 100 / SPEEDUP : 10))}"

bench_init
lbx_binary
PLUGINS_DIR="$ROOT/plugins"
for policy in $POLICIES; do
	[[ -f "$PLUGINS_DIR/$policy.wasm" ]] || (cd "$ROOT" && bash plugins/build.sh >&2)
	[[ -f "$PLUGINS_DIR/$policy.wasm" ]] || die "no plugin $PLUGINS_DIR/$policy.wasm"
done

# start_replicas: REPLICAS fresh simulated replicas; sets REPLICA_URLS and REPLICA_PIDS.
REPLICA_URLS=()
REPLICA_PIDS=()
start_replicas() {
	local ports port i=0
	read -r -a ports <<<"$(free_ports "$REPLICAS")"
	REPLICA_URLS=()
	REPLICA_PIDS=()
	for port in "${ports[@]}"; do
		i=$((i + 1))
		start "replica-$i" "" 3600 "$LBX_BIN" backend --llm --listen "127.0.0.1:$port" \
			--name "replica-$i" --model "$MODEL" --speedup "$SPEEDUP" \
			--max-running "$MAX_RUNNING" --kv-blocks "$KV_BLOCKS"
		REPLICA_PIDS+=("$START_PID")
		REPLICA_URLS+=("http://127.0.0.1:$port")
	done
	for ((i = 0; i < ${#REPLICA_URLS[@]}; i++)); do
		wait_ready "replica-$((i + 1))" "${REPLICA_PIDS[$i]}" "${REPLICA_URLS[$i]}/v1/models"
	done
}

stop_replicas() {
	local pid
	for pid in "${REPLICA_PIDS[@]}"; do stop "$pid"; done
	REPLICA_PIDS=()
}

# lbx_config POLICY: the lbx.toml for POLICY over the running replicas.
lbx_config() {
	local policy="$1" url
	cat <<EOF
listen = "127.0.0.1:$LBX_PORT"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[log]
access = $([[ -n "${LOGS:-}" ]] && echo true || echo false)
format = "json"
[retry]
non_idempotent = true
[plugin]
path = "$PLUGINS_DIR/$policy.wasm"
body_prefix = "$BODY_PREFIX"
[signals]
interval = "${SCRAPE_MS}ms"
metrics = ["vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"]
EOF
	if [[ "$policy" == llm_router && -n "${LLM_ROUTER_CONFIG:-}" ]]; then
		printf '[plugin.config]\n%s\n' "$LLM_ROUTER_CONFIG"
	fi
	if [[ "$policy" == consistent_hash ]]; then
		printf '[plugin.config]\nkey = "header:x-session-id"\nbalance_factor = 1.25\n'
	fi
	for url in "${REPLICA_URLS[@]}"; do
		printf '[[backend]]\nurl = "%s"\nlabels = { model = "%s" }\n' "$url" "$MODEL"
	done
}

# metric_sum TEXT NAME: the sum of every series of NAME in a Prometheus exposition.
metric_sum() {
	awk -v name="$2" '$1 == name || index($1, name "{") == 1 { s += $NF } END { printf "%.9g\n", s + 0 }' <<<"$1"
}

# run_policy POLICY RATE: one run; prints the generator's JSON with lbx's costs added.
run_policy() {
	local policy="$1" rate="$2" lbx_pid server before after metrics sent
	start_replicas
	read -r LBX_PORT ADMIN_PORT <<<"$(free_ports 2)"
	lbx_config "$policy" >"$TMP/lbx.toml"
	start lbx "" 3600 "$LBX_BIN" run --config "$TMP/lbx.toml"
	lbx_pid="$START_PID"
	wait_ready lbx "$lbx_pid" "http://127.0.0.1:$ADMIN_PORT/ready"
	server="$(server_pid "$lbx_pid")"
	before="$(cpu_ticks "$server")"
	"$LBX_BIN" llm-load --url "http://127.0.0.1:$LBX_PORT" --model "$MODEL" --rate "$rate" \
		--duration "${DURATION}s" --seed "$SEED" --conversations "$CONVERSATIONS" \
		--system-prompts "$SYSTEM_PROMPTS" --system-prompt-tokens "$SYSTEM_PROMPT_TOKENS" --json \
		>"$TMP/run.json" || true
	after="$(cpu_ticks "$server")"
	metrics="$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics")"
	# How long requests waited in the replicas' queues (vLLM's request_queue_time histogram).
	local url i=0 replica queue_sum=0 queue_count=0
	[[ -z "${LOGS:-}" ]] || mkdir -p "$LOGS"
	for url in "${REPLICA_URLS[@]}"; do
		i=$((i + 1))
		replica="$(curl -fsS "$url/metrics" || true)"
		[[ -z "${LOGS:-}" ]] || printf '%s\n' "$replica" >"$LOGS/$rate-$policy-replica-$i.metrics"
		queue_sum="$(python3 -c "print($queue_sum + $(metric_sum "$replica" vllm:request_queue_time_seconds_sum))")"
		queue_count="$(python3 -c "print($queue_count + $(metric_sum "$replica" vllm:request_queue_time_seconds_count))")"
	done
	stop "$lbx_pid"
	[[ -z "${LOGS:-}" ]] || cp "$TMP/lbx.log" "$LOGS/$rate-$policy-access.log"
	stop_replicas
	python3 - "$TMP/run.json" "$policy" "$rate" "$((after - before))" "$TICK" \
		"$(metric_sum "$metrics" lbx_plugin_decision_seconds_sum)" \
		"$(metric_sum "$metrics" lbx_plugin_decision_seconds_count)" "$queue_sum" "$queue_count" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
policy, rate, ticks, tick, decision_sum, decisions, queue_sum, queue_count = sys.argv[2:10]
sent = max(run.get("sent", 0), 1)
run.update({
    "speedup": float(__import__("os").environ.get("SPEEDUP", "1")),
    "policy": policy,
    "rate": float(rate),
    "lbx_cpu_us_per_request": int(ticks) * 1e6 / int(tick) / sent,
    "decision_us": float(decision_sum) * 1e6 / float(decisions) if float(decisions) else None,
    "queue_ms_mean": float(queue_sum) * 1e3 / float(queue_count) if float(queue_count) else None,
})
print(json.dumps(run))
EOF
}

if [[ -z "${CAPACITY:-}" ]]; then
	# Well above what MAX_RUNNING slots per replica can serve (a request holds one ~2 s).
	probe="${CAPACITY_PROBE_RATE:-$((REPLICAS * MAX_RUNNING))}"
	log "measuring the pool's capacity: least_conn offered $probe req/s for ${DURATION}s"
	CAPACITY="$(run_policy least_conn "$probe" | python3 -c \
		'import json, sys; r = json.load(sys.stdin); print(round(r["ok"] / r["elapsed_s"], 3))')"
fi
log "capacity: $CAPACITY req/s (completed by least_conn under overload)"

: >"$RESULTS.json"
for load in $LOADS; do
	rate="$(python3 -c "print(round($CAPACITY * $load, 3))")"
	for policy in $POLICIES; do
		log "load $load ($rate req/s): $policy"
		run_policy "$policy" "$rate" |
			python3 -c "import json, sys; r = json.load(sys.stdin); r['load'] = $load; r['capacity'] = $CAPACITY; print(json.dumps(r))" \
				>>"$RESULTS.json"
	done
done

python3 "$ROOT/bench/llm_report.py" "$RESULTS.json" "$RESULTS.md" "$RESULTS.png" \
	"REPLICAS=$REPLICAS MAX_RUNNING=$MAX_RUNNING KV_BLOCKS=$KV_BLOCKS SPEEDUP=$SPEEDUP DURATION=$DURATION CONVERSATIONS=$CONVERSATIONS SYSTEM_PROMPTS=$SYSTEM_PROMPTS SYSTEM_PROMPT_TOKENS=$SYSTEM_PROMPT_TOKENS SEED=$SEED LOADS=\"$LOADS\" bash bench/llm.sh"
log "wrote $RESULTS.json, $RESULTS.md, $RESULTS.png"
cat "$RESULTS.md"
