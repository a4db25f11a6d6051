#!/usr/bin/env bash
# The README's "Fleet mode" walk-through, played for real: a 3-member etcd cluster on
# loopback, three `lbx backend`s and three lbx nodes in fleet mode. Then:
#   1. node-1 seeds the empty store from its file (backends a and b, least_conn.wasm); nodes 2
#      and 3 start with no backends of their own and take the fleet's;
#   2. a backend added through node-1's admin API (?wait=applied) serves through node-3;
#   3. a drain through node-2, seen on node-1; `lbx fleet status`;
#   4. every etcd member stopped: the nodes serve on, a write answers 503; node-3 restarted
#      while the store is down starts from its state file; the members come back and a write
#      goes through again.
# Each step prints the command and its answer. Takes about half a minute after the build.
#
# Run: bash scripts/fleet-walkthrough.sh
# Free loopback ports are used (the README shows 2379…, 8081… and 9911…); every process started
# here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh >/dev/null
cargo build --quiet -p lbx
bash plugins/build.sh >/dev/null
lbx="$PWD/${CARGO_TARGET_DIR:-target}/debug/lbx"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pids=()
etcd_pids=(0 0 0)
work="$(mktemp -d)"
cleanup() {
  kill "${pids[@]}" "${etcd_pids[@]}" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# wait_for URL: until it answers, at most 30 s.
wait_for() {
  for _ in $(seq 300); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "fleet-walkthrough: nothing answers at $1" >&2
  exit 1
}
# say TEXT: a step's title.
say() { printf '\n== %s\n' "$1"; }
# show CMD...: print the command, run it.
show() {
  echo "\$ $*"
  "$@"
  echo
}

# --- etcd: three members, fast elections ---------------------------------------------------
client=() peer=()
for i in 0 1 2; do
  client[i]="$(free_port)"
  peer[i]="$(free_port)"
done
cluster="m0=http://127.0.0.1:${peer[0]},m1=http://127.0.0.1:${peer[1]},m2=http://127.0.0.1:${peer[2]}"
# start_member I STATE: member I in the background (data in $work/etcd-I).
start_member() {
  timeout 600 etcd --name "m$1" --data-dir "$work/etcd-$1" \
    --listen-client-urls "http://127.0.0.1:${client[$1]}" \
    --advertise-client-urls "http://127.0.0.1:${client[$1]}" \
    --listen-peer-urls "http://127.0.0.1:${peer[$1]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${peer[$1]}" \
    --initial-cluster "$cluster" --initial-cluster-state "$2" \
    --initial-cluster-token lbx-walkthrough \
    --heartbeat-interval 50 --election-timeout 500 \
    --log-level error >"$work/etcd-$1.log" 2>&1 &
  etcd_pids[$1]=$!
}
for i in 0 1 2; do start_member "$i" new; done
endpoints="\"http://127.0.0.1:${client[0]}\", \"http://127.0.0.1:${client[1]}\", \"http://127.0.0.1:${client[2]}\""
for i in 0 1 2; do wait_for "http://127.0.0.1:${client[$i]}/health"; done

# --- backends ------------------------------------------------------------------------------
backend=()
for name in a b c; do
  port="$(free_port)"
  timeout 600 "$lbx" backend --listen "127.0.0.1:$port" --name "$name" >/dev/null 2>&1 &
  pids+=($!)
  backend+=("http://127.0.0.1:$port")
done
for url in "${backend[@]}"; do wait_for "$url/"; done

# --- three lbx nodes -----------------------------------------------------------------------
listen=() admin=()
# node_config I: node-I's file; node-1's [plugin] and [[backend]]s seed the empty store.
node_config() {
  cat <<TOML
listen = "127.0.0.1:${listen[$1]}"

[admin]
listen = "127.0.0.1:${admin[$1]}"

[fleet]
endpoints = [$endpoints]
node_id = "node-$1"
TOML
  if [ "$1" = 1 ]; then
    cat <<TOML

[plugin]
path = "$PWD/plugins/least_conn.wasm"

[[backend]]
id = "a"
url = "${backend[0]}"

[[backend]]
id = "b"
url = "${backend[1]}"
TOML
  fi
}
node_pids=(0 0 0 0)
start_node() {
  timeout 600 "$lbx" run --config "$work/node-$1.toml" >"$work/node-$1.log" 2>&1 &
  node_pids[$1]=$!
  wait_for "http://127.0.0.1:${admin[$1]}/ready"
}
for i in 1 2 3; do
  listen[i]="$(free_port)"
  admin[i]="$(free_port)"
  node_config "$i" >"$work/node-$i.toml"
done
say "node-1 seeds the empty store from its file; nodes 2 and 3 take the fleet's state"
for i in 1 2 3; do start_node "$i"; done
for i in 1 2 3; do
  echo "node-$i backends: $(curl -s "http://127.0.0.1:${admin[$i]}/admin/backends" |
    python3 -c 'import json, sys; print([b["id"] for b in json.load(sys.stdin)["backends"]])')"
done

say "a backend added through node-1, in force everywhere once the answer comes"
show curl -s -X POST "http://127.0.0.1:${admin[1]}/admin/backends?wait=applied" \
  -d "{\"id\": \"c\", \"url\": \"${backend[2]}\"}"
echo "through node-3: $(for _ in 1 2 3 4 5 6; do curl -s "http://127.0.0.1:${listen[3]}/" | tr -d '\n'; echo -n ' '; done)"

say "a drain through node-2, seen on node-1"
show curl -s -X PATCH "http://127.0.0.1:${admin[2]}/admin/backends/a?wait=applied" -d '{"drain": true}'
echo "node-1 says a is: $(curl -s "http://127.0.0.1:${admin[1]}/admin/backends/a" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["state"])')"
show "$lbx" fleet status --config "$work/node-1.toml"

say "the whole store goes down: nodes serve on, writes answer 503"
kill "${etcd_pids[@]}"
wait "${etcd_pids[@]}" 2>/dev/null || true
echo "through node-1: $(for _ in 1 2 3 4; do curl -s "http://127.0.0.1:${listen[1]}/" | tr -d '\n'; echo -n ' '; done)"
show curl -s -w ' (%{http_code})\n' -X PATCH "http://127.0.0.1:${admin[1]}/admin/backends/a" -d '{"drain": false}'
kill "${node_pids[3]}"
wait "${node_pids[3]}" 2>/dev/null || true
start_node 3
echo "node-3 restarted while the store is down: $(grep -o 'fleet store unreachable: starting from the state this node last applied' "$work/node-3.log" | head -1)"
echo "through node-3: $(for _ in 1 2 3 4; do curl -s "http://127.0.0.1:${listen[3]}/" | tr -d '\n'; echo -n ' '; done)"

say "the store is back: the nodes reconnect, writes go through again"
for i in 0 1 2; do start_member "$i" existing; done
for i in 0 1 2; do wait_for "http://127.0.0.1:${client[$i]}/health"; done
for _ in $(seq 100); do
  status="$(curl -s -o /dev/null -w '%{http_code}' -X PATCH \
    "http://127.0.0.1:${admin[1]}/admin/backends/a?wait=applied" -d '{"drain": false}')"
  [ "$status" = 200 ] && break
  sleep 0.2
done
echo "undrain through node-1: $status"
show "$lbx" fleet status --config "$work/node-1.toml"
