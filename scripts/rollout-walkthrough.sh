#!/usr/bin/env bash
# The README's "From shadow to canary to promotion" walk-through, played against a real lbx:
# three `lbx backend`s (gamma answers 20 ms late), lbx with round_robin.wasm live, and eight
# curl loops of users (`x-user: u1` … `u40`) sending traffic. Then:
#   1. least_conn.wasm runs as a shadow on half of the requests; its report after 10 s;
#   2. the same file starts as a canary keyed by `x-user`, steps 10, 50, 100 %, 12 s each;
#      with --screenshot, headless Chromium saves docs/rollout.png of the dashboard during
#      the 50% step (shadow table and canary panel on one page);
#   3. the canary passes its gates and is promoted; its story and the plugin history;
#   4. a rollback to round_robin, from the compile cache.
# Each step prints the admin API's answer. Takes about a minute after the build.
#
# Run: bash scripts/rollout-walkthrough.sh [--screenshot]
# Free loopback ports are used (the README shows 9001–9003, 8080 and 9901); every process
# started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
shot=""
case "${1:-}" in
"") ;;
--screenshot) shot="$PWD/docs/rollout.png" ;;
*) echo "usage: bash scripts/rollout-walkthrough.sh [--screenshot]" >&2; exit 2 ;;
esac

bash scripts/setup.sh >/dev/null
cargo build --quiet -p lbx
bash plugins/build.sh >/dev/null
lbx="${CARGO_TARGET_DIR:-target}/debug/lbx"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pids=()

# wait_for URL: until it answers, at most 30 s.
wait_for() {
  for _ in $(seq 300); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "rollout-walkthrough: nothing answers at $1" >&2
  exit 1
}
# api METHOD PATH [BODY] [EXPR]: call the admin API, print the command and its answer: whole
# (one line) or, with EXPR, what that Python expression over `j` (the answer) gives.
api() {
  local answer
  echo "\$ curl -s -X $1 http://$admin$2${3:+ -d '$3'}"
  answer="$(curl -s -X "$1" "http://$admin$2" ${3:+-d "$3"})"
  python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$answer" "${4:-j}"
}
# field PATH EXPR: one value from a GET answer (EXPR in Python over `j`).
field() {
  curl -s "http://$admin$1" | python3 -c "import json, sys; j = json.load(sys.stdin); print($2)"
}

# lbx from a config file, so that the backends show by name.
work="$(mktemp -d)"
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
echo "[plugin]
path = \"$PWD/plugins/round_robin.wasm\"" >"$work/lbx.toml"
for spec in alpha:0 beta:0 gamma:20; do
  port=$(free_port)
  timeout 300 "$lbx" backend --listen "127.0.0.1:$port" --name "${spec%:*}" --delay-ms "${spec#*:}" \
    >/dev/null 2>&1 &
  pids+=($!)
  wait_for "http://127.0.0.1:$port/"
  printf '[[backend]]\nid = "%s"\nurl = "http://127.0.0.1:%s"\n' "${spec%:*}" "$port" >>"$work/lbx.toml"
done
listen="127.0.0.1:$(free_port)"
admin="127.0.0.1:$(free_port)"
timeout 300 "$lbx" run --config "$work/lbx.toml" --listen "$listen" --admin "$admin" >/dev/null 2>&1 &
pids+=($!)
wait_for "http://$admin/ready"

# Traffic: eight loops, each a user at a time; bounded so they stop even if this script dies.
for loop in 1 2 3 4 5 6 7 8; do
  timeout 240 bash -c "while :; do for u in \$(seq $loop 8 40); do
    curl -s -o /dev/null -H \"x-user: u\$u\" 'http://$listen/'; done; done" &
  pids+=($!)
done

echo "== 1. least_conn.wasm as a shadow of round_robin.wasm, on half of the requests"
api POST /admin/plugin/shadow "{\"path\": \"$PWD/plugins/least_conn.wasm\", \"sample\": 0.5}" \
  '"{result}: {name}, sample {sample}".format(result=j["result"], **j["shadow"])'
sleep 10
api GET /admin/plugin/shadow "" '"\n".join(
  ["compared %d, agreed %d (%.0f%%), errors %s, %.0f us a decision"
   % (s["compared"], s["agreed"], 100 * s["agreement"], s["errors"], s["us_per_decision"])
   for s in j["shadows"]]
  + ["  %s: live %.0f%%, shadow %.0f%%" % (c["choice"], 100 * c["live"], 100 * c["shadow"])
     for c in j["shadows"][0]["shares"]])'

echo "== 2. the same file as a canary, by user, 10% → 50% → 100%, 12 s a step"
api POST /admin/plugin/canary "{\"path\": \"$PWD/plugins/least_conn.wasm\", \"steps\": [10, 50, 100],
  \"step_duration\": \"12s\", \"key\": \"header:x-user\", \"gates\": {\"min_requests\": 30}}" \
  '"%s: %s at %.0f%% of requests, keyed by %s" % (j["result"], j["canary"]["path"], j["canary"]["share_percent"], j["canary"]["key"])'
for _ in $(seq 200); do
  [[ "$(field /admin/plugin/canary 'j["share_percent"]' 2>/dev/null)" == 50* ]] && break
  sleep 0.1
done
if [[ -n "$shot" ]]; then
  sleep 2 # the 50% step's first figures
  if ! answers=$(printf 'wait-polls 2\nscreenshot %s full\nquit\n' "$shot" |
    python3 tests/integration/peers/dashboard_browser.py chromium "http://$admin/"); then
    echo "rollout-walkthrough: the browser failed: $answers" >&2
    exit 1
  fi
  echo "(dashboard saved to ${shot#"$PWD"/})"
fi

echo "== 3. waiting for the canary to pass its last step"
for _ in $(seq 400); do
  [[ "$(field /admin/plugin/canary 'j["state"]')" == promoted ]] && break
  sleep 0.1
done
api GET /admin/plugin/canary "" '"\n".join("%-11s %s" % (t["what"], t["detail"]) for t in j["transitions"])'
api GET /admin/plugin/history "" '"\n".join("#%d %s %-8s in force: %s" % (v["id"], v["sha256"][:12], v["source"], v["in_force"]) for v in j["versions"])'
echo "== 4. and back: a rollback to the previous version"
api POST /admin/plugin/rollback '{"steps": 1, "reason": "walk-through"}' '"%s: %s" % (j["result"], j["detail"])'
