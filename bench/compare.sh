#!/usr/bin/env bash
# Load comparison: lbx vs nginx vs haproxy, all three in front of the same two
# backends, one worker/thread each, upstream keep-alive, least-connections.
#
# Run (from anywhere; paths are resolved from this file):
#   bash bench/compare.sh
#
# Optional environment variables (defaults in brackets):
#   DURATION=10s        wrk measurement time per proxy (wrk syntax: 10s, 1m) [10s]
#   CONNECTIONS=64      wrk concurrent connections                          [64]
#   WARMUP=2s           wrk warm-up run per proxy, not measured             [2s]
#   LBX_BIN=path        use this lbx binary, skip `cargo build`             [build]
#   SKIP_LBX=1          do not benchmark lbx (no plugin build needed)       [0]
#   BACKEND=lbx|nginx   what serves the two backends: `lbx backend`, or a
#                       stand-in nginx answering 200 "b1\n" / "b2\n"        [lbx]
#   PROXY_CPUS=0        taskset CPU list for the proxy under test           [0]
#   BACKEND_CPUS=0      taskset CPU list for the two backends               [0]
#   WRK_CPUS=1          taskset CPU list for wrk                            [1]
#   NGINX_KEEPALIVE=N   nginx `keepalive` (idle upstream conns cached per
#                       worker)                      [max(32, CONNECTIONS)]
#   RESULTS_DIR=dir     where the markdown report goes           [bench/results]
#
# Example (what was used to test the script before lbx existed):
#   SKIP_LBX=1 BACKEND=nginx DURATION=5s bash bench/compare.sh
#
# CPU pinning: on a 2-core machine the proxy under test and the backends share
# core 0 and wrk gets core 1, so the load generator never steals CPU from the
# proxy. The same pinning is used for all three proxies, so the comparison is
# fair; backends are cheap compared to the proxy. With fewer than 2 CPUs the
# pinning is dropped (everything would land on one core anyway).
#
# Everything listens on 127.0.0.1 on free ports picked at start-up. Every
# server runs under `timeout`, so even if this script is killed with SIGKILL
# they stop by themselves once the run's time budget has passed.

set -euo pipefail

# ---------------------------------------------------------------- settings --
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
WARMUP="${WARMUP:-2s}"
SKIP_LBX="${SKIP_LBX:-0}"
BACKEND="${BACKEND:-lbx}"
PROXY_CPUS="${PROXY_CPUS:-0}"
BACKEND_CPUS="${BACKEND_CPUS:-0}"
WRK_CPUS="${WRK_CPUS:-1}"
# nginx closes any idle upstream connection beyond `keepalive`. With fewer
# cached slots than client connections it opens and closes upstream
# connections all the time (measured: keepalive 32 at -c64 gave ~26k
# TIME_WAIT sockets and 40% fewer req/s). haproxy (http-reuse always) and lbx
# keep every idle connection, so match them by default.
NGINX_KEEPALIVE="${NGINX_KEEPALIVE:-$((CONNECTIONS > 32 ? CONNECTIONS : 32))}"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/bench/results}"
PLUGIN="$ROOT/plugins/least_conn.wasm"
READY_TIMEOUT=15 # seconds to wait for a server to answer its first request

case "$BACKEND" in
lbx | nginx) ;;
*) echo "BACKEND must be 'lbx' or 'nginx', got '$BACKEND'" >&2; exit 2 ;;
esac

log() { printf '[compare] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wrk duration ("10s", "2m", "1h", "10") -> whole seconds.
to_seconds() {
	local d="$1"
	case "$d" in
	*s) echo "${d%s}" ;;
	*m) echo $(("${d%m}" * 60)) ;;
	*h) echo $(("${d%h}" * 3600)) ;;
	*) echo "$d" ;;
	esac
}

# Upper bound on the whole benchmark phase: 3 proxies x (warm-up + run) plus
# generous slack for start-up. Servers are killed by `timeout` after this even
# if cleanup never runs.
SERVER_TTL=$((3 * ($(to_seconds "$WARMUP") + $(to_seconds "$DURATION") + 10) + 60))

# Pinning only makes sense with at least two CPUs.
if [[ "$(nproc)" -lt 2 ]]; then
	PROXY_CPUS="" BACKEND_CPUS="" WRK_CPUS=""
fi
# pin_prefix CPUS: set PIN to the command prefix restricting a program to CPUS
# (empty when CPUS is empty). An array, not a function, so it also works
# behind `timeout`.
PIN=()
pin_prefix() {
	PIN=()
	if [[ -n "$1" ]]; then PIN=(taskset -c "$1"); fi
}

# ----------------------------------------------------------------- cleanup --
TMP="$(mktemp -d /tmp/lbx-compare.XXXXXX)"
PIDS=()
WRK_PID=

cleanup() {
	local pid
	trap - EXIT INT TERM
	# TERM to `timeout` is forwarded to the server's whole process group
	# (nginx master + worker, haproxy, lbx).
	[[ -z "$WRK_PID" ]] || kill -TERM "$WRK_PID" 2>/dev/null || true
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CPUS CMD... : run a server in the background under `timeout`,
# output to $TMP/NAME.log, pid remembered for cleanup. Sets START_PID.
START_PID=
start() {
	local name="$1" cpus="$2"; shift 2
	pin_prefix "$cpus"
	timeout --kill-after=5 "$SERVER_TTL" "${PIN[@]}" "$@" >"$TMP/$name.log" 2>&1 &
	START_PID=$!
	PIDS+=("$START_PID")
}

# wait_ready NAME PID PORT: poll until http://127.0.0.1:PORT/ answers 2xx.
wait_ready() {
	local name="$1" pid="$2" port="$3" deadline=$((SECONDS + READY_TIMEOUT))
	while ! curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/" 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$TMP/$name.log" >&2 || true
			die "$name exited before answering on port $port"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 20 "$TMP/$name.log" >&2 || true
			die "$name did not answer on port $port within ${READY_TIMEOUT}s"
		fi
		sleep 0.1
	done
	log "$name is up on 127.0.0.1:$port"
}

# free_ports N: print N distinct free TCP ports on 127.0.0.1. All sockets are
# held open until every port is picked, so the kernel never hands one out twice.
free_ports() {
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# ---------------------------------------------------------------- install --
install_tools() {
	local missing=()
	command -v nginx >/dev/null || missing+=(nginx)
	command -v haproxy >/dev/null || missing+=(haproxy)
	command -v wrk >/dev/null || missing+=(wrk)
	command -v curl >/dev/null || missing+=(curl)
	command -v taskset >/dev/null || missing+=(util-linux)
	command -v python3 >/dev/null || missing+=(python3)
	if ((${#missing[@]})); then
		log "installing: ${missing[*]}"
		local sudo=()
		[[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
	fi
	# On Debian, installing nginx/haproxy may start the distro services where
	# systemd runs; they listen on :80 only and do not disturb us (we use free
	# ports), so they are left alone.
}

build_lbx() {
	local need_bin=0
	[[ "$SKIP_LBX" == 1 ]] || need_bin=1
	[[ "$BACKEND" != lbx ]] || need_bin=1
	if ((need_bin)); then
		if [[ -n "${LBX_BIN:-}" ]]; then
			log "using LBX_BIN=$LBX_BIN (no cargo build)"
		else
			log "cargo build --release -p lbx"
			(cd "$ROOT" && cargo build --release -p lbx)
			LBX_BIN="$ROOT/target/release/lbx"
		fi
		[[ -x "$LBX_BIN" ]] || die "lbx binary not found/executable: $LBX_BIN"
	fi
	if [[ "$SKIP_LBX" != 1 ]]; then
		log "bash plugins/build.sh"
		(cd "$ROOT" && bash plugins/build.sh)
		[[ -f "$PLUGIN" ]] || die "plugin not built: $PLUGIN"
	fi
}

# --------------------------------------------------------------- backends --
start_backends() {
	if [[ "$BACKEND" == lbx ]]; then
		start backend-b1 "$BACKEND_CPUS" env RUST_LOG=warn "$LBX_BIN" backend --listen "127.0.0.1:$P_B1" --name b1
		wait_ready backend-b1 "$START_PID" "$P_B1"
		start backend-b2 "$BACKEND_CPUS" env RUST_LOG=warn "$LBX_BIN" backend --listen "127.0.0.1:$P_B2" --name b2
		wait_ready backend-b2 "$START_PID" "$P_B2"
	else
		# Stand-in: one nginx (1 worker) serving both backend ports.
		mkdir -p "$TMP/nginx-backend"
		write_nginx_common "$TMP/nginx-backend" >"$TMP/nginx-backend/nginx.conf"
		cat >>"$TMP/nginx-backend/nginx.conf" <<EOF
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server { listen 127.0.0.1:$P_B1; location / { return 200 "b1\n"; } }
    server { listen 127.0.0.1:$P_B2; location / { return 200 "b2\n"; } }
}
EOF
		nginx -t -q -p "$TMP/nginx-backend" -e "$TMP/nginx-backend/error.log" -c "$TMP/nginx-backend/nginx.conf" \
			|| die "stand-in backend nginx config invalid"
		start backend-nginx "$BACKEND_CPUS" nginx -p "$TMP/nginx-backend" -e "$TMP/nginx-backend/error.log" \
			-c "$TMP/nginx-backend/nginx.conf"
		wait_ready backend-nginx "$START_PID" "$P_B1"
		wait_ready backend-nginx "$START_PID" "$P_B2"
	fi
}

# ----------------------------------------------------------------- proxies --
# Top of an nginx.conf that runs unprivileged-path-safe from directory $1:
# foreground, pid/logs/temp files all inside $1 (the Debian defaults under
# /var/lib/nginx and /run are not used).
write_nginx_common() {
	local dir="$1"
	# As root, nginx workers would otherwise switch to `nobody`, which cannot
	# enter our 0700 mktemp dir (proxy temp files, error log reopen).
	[[ "$(id -u)" -ne 0 ]] || echo "user root root;"
	cat <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
EOF
	# The temp paths must be inside http{}; the callers add them.
}

nginx_temp_paths() {
	local dir="$1"
	cat <<EOF
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
EOF
}

start_nginx() {
	local dir="$TMP/nginx"
	mkdir -p "$dir"
	{
		write_nginx_common "$dir"
		echo "http {"
		nginx_temp_paths "$dir"
		cat <<EOF
    access_log off;
    # nginx closes a client keep-alive connection after 1000 requests by
    # default (and upstream ones too); haproxy and lbx have no such limit.
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    upstream backends {
        least_conn;
        server 127.0.0.1:$P_B1;
        server 127.0.0.1:$P_B2;
        keepalive $NGINX_KEEPALIVE;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$P_NGINX;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
	} >"$dir/nginx.conf"
	nginx -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" || die "nginx config invalid"
	start nginx "$PROXY_CPUS" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
	wait_ready nginx "$START_PID" "$P_NGINX"
}

start_haproxy() {
	cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    # haproxy needs ~2 fds per conn and refuses to start if it cannot raise
    # RLIMIT_NOFILE that far (e.g. 10000 fails under a 20000 hard limit).
    maxconn 4096
    # no 'log' line: logging off

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend fe
    bind 127.0.0.1:$P_HAPROXY
    default_backend be

backend be
    balance leastconn
    http-reuse always
    server b1 127.0.0.1:$P_B1
    server b2 127.0.0.1:$P_B2
EOF
	haproxy -c -q -f "$TMP/haproxy.cfg" || die "haproxy config invalid"
	# -db: stay in the foreground (we background it ourselves).
	start haproxy "$PROXY_CPUS" haproxy -db -f "$TMP/haproxy.cfg"
	wait_ready haproxy "$START_PID" "$P_HAPROXY"
}

start_lbx() {
	start lbx "$PROXY_CPUS" env RUST_LOG=warn "$LBX_BIN" run --plugin "$PLUGIN" \
		--backend "http://127.0.0.1:$P_B1" --backend "http://127.0.0.1:$P_B2" \
		--listen "127.0.0.1:$P_LBX" --workers 1
	wait_ready lbx "$START_PID" "$P_LBX"
}

# -------------------------------------------------------------------- wrk --
# run_wrk NAME PORT: warm up, then measure; raw output in $TMP/wrk-NAME.txt.
run_wrk() {
	local name="$1" port="$2" url="http://127.0.0.1:$2/"
	log "$name: warm-up $WARMUP"
	wrk_bg "$WARMUP" "$url" >/dev/null
	log "$name: wrk -t1 -c$CONNECTIONS -d$DURATION --latency $url"
	wrk_bg "$DURATION" --latency "$url" >"$TMP/wrk-$name.txt"
}

# wrk_bg DURATION ARGS...: run pinned wrk and wait for it. It runs in the
# background + `wait` because bash only runs a signal trap once a foreground
# command has finished; `wait` returns at once on INT/TERM, so Ctrl-C stops
# the benchmark immediately (cleanup kills wrk via its pid).
wrk_bg() {
	local d="$1" ttl; shift
	ttl=$(($(to_seconds "$d") + 30))
	pin_prefix "$WRK_CPUS"
	timeout "$ttl" "${PIN[@]}" wrk -t1 -c"$CONNECTIONS" -d"$d" "$@" &
	WRK_PID=$!
	wait "$WRK_PID" || die "wrk failed (exit $?)"
	WRK_PID=
}

# parse_wrk FILE: print "req_s p50_ms p99_ms errors" (n/a when missing).
parse_wrk() {
	awk '
	function ms(v,   n, u) {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "us") return n / 1000
		if (u == "ms") return n
		if (u == "s")  return n * 1000
		if (u == "m")  return n * 60000
		if (u == "h")  return n * 3600000
		return -1
	}
	/^[ \t]+50%/ { p50 = ms($2) }
	/^[ \t]+99%/ { p99 = ms($2) }
	/^Requests\/sec:/ { rps = $2 }
	/Socket errors:/ {
		# "Socket errors: connect 0, read 0, write 0, timeout 0"
		for (i = 3; i <= NF; i += 2) { v = $(i + 1); sub(/,/, "", v); err += v }
	}
	/Non-2xx or 3xx responses:/ { err += $NF }
	END {
		printf "%s %s %s %s\n", (rps == "" ? "n/a" : rps),
			(p50 == "" ? "n/a" : sprintf("%.3f", p50)),
			(p99 == "" ? "n/a" : sprintf("%.3f", p99)), (rps == "" ? "n/a" : err + 0)
	}' "$1"
}

# ratio A B: A/B with two decimals, or n/a.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "n/a" }'
}

# ------------------------------------------------------------------- main --
main() {
	install_tools
	build_lbx

	read -r P_B1 P_B2 P_NGINX P_HAPROXY P_LBX <<<"$(free_ports 5)"

	start_backends
	start_nginx
	start_haproxy
	local proxies=(nginx haproxy)
	declare -A port=([nginx]=$P_NGINX [haproxy]=$P_HAPROXY [lbx]=$P_LBX)
	if [[ "$SKIP_LBX" != 1 ]]; then
		start_lbx
		proxies+=(lbx)
	fi

	# Sanity: each proxy really reaches the backends (body b1/b2).
	local p body
	for p in "${proxies[@]}"; do
		body="$(curl -fsS --max-time 2 "http://127.0.0.1:${port[$p]}/")"
		[[ "$body" == b1 || "$body" == b2 ]] || die "$p answered unexpected body: '$body'"
	done

	# All servers are up; idle ones cost nothing while the others are measured.
	for p in "${proxies[@]}"; do
		run_wrk "$p" "${port[$p]}"
	done

	# ---- report
	declare -A rps
	local table r50 r99 err rp
	table="| proxy | req/s | p50 ms | p99 ms | errors |"$'\n'"|---|---:|---:|---:|---:|"
	for p in "${proxies[@]}"; do
		read -r rp r50 r99 err <<<"$(parse_wrk "$TMP/wrk-$p.txt")"
		rps[$p]=$rp
		table+=$'\n'"| $p | $rp | $r50 | $r99 | $err |"
	done
	local ratios
	if [[ "$SKIP_LBX" != 1 ]]; then
		ratios="req/s ratio lbx/nginx: $(ratio "${rps[lbx]}" "${rps[nginx]}")"$'\n'
		ratios+="req/s ratio lbx/haproxy: $(ratio "${rps[lbx]}" "${rps[haproxy]}")"
	else
		ratios="lbx skipped (SKIP_LBX=1); haproxy/nginx req/s: $(ratio "${rps[haproxy]}" "${rps[nginx]}")"
	fi

	local stamp report
	stamp="$(date +%Y-%m-%d-%H%M%S)"
	mkdir -p "$RESULTS_DIR"
	report="$RESULTS_DIR/compare-$stamp.md"
	{
		echo "# lbx vs nginx vs haproxy ($stamp)"
		echo
		echo "- wrk -t1 -c$CONNECTIONS -d$DURATION --latency (after ${WARMUP} warm-up), one proxy at a time"
		echo "- each proxy: 1 worker/thread, least-connections, upstream keep-alive; backends: $BACKEND (b1, b2)"
		echo "- pinning: proxy cpu '${PROXY_CPUS:-none}', backends cpu '${BACKEND_CPUS:-none}', wrk cpu '${WRK_CPUS:-none}' ($(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))"
		echo "- versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v | head -n1 | awk '{print "haproxy " $3}'), $(wrk -v 2>&1 | head -n1 | awk '{print $1 " " $2}')$( [[ "$SKIP_LBX" == 1 ]] || echo ", lbx $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')")"
		echo "- nginx upstream keepalive $NGINX_KEEPALIVE; haproxy http-reuse always"
		echo "- errors = socket errors (connect/read/write/timeout) + non-2xx/3xx responses"
		echo
		echo "$table"
		echo
		echo "$ratios"
		echo
		echo "<details><summary>raw wrk output</summary>"
		echo
		for p in "${proxies[@]}"; do
			echo "### $p"
			echo '```'
			cat "$TMP/wrk-$p.txt"
			echo '```'
		done
		echo "</details>"
	} >"$report"

	echo
	echo "$table"
	echo
	echo "$ratios"
	echo
	log "report written to ${report#"$ROOT"/}"
}

main "$@"
