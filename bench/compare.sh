#!/usr/bin/env bash
# lbx against nginx, HAProxy and Caddy, all in front of the same two fast backends, in one run,
# with the same pinning, one worker each, least-connections and upstream keep-alive. Per proxy
# and scenario it reports requests/s, p50/p99 latency, errors and the proxy's own CPU per
# request (utime + stime of its processes over the measured run, divided by the requests), and
# lbx's ratios against each peer.
#
# Run (from anywhere; paths are resolved from this file):
#   bash bench/compare.sh
#   SCENARIOS="http1 h2 workers2 idle10k" bash bench/compare.sh
#
# Scenarios (SCENARIOS, space-separated, run in the order given):
#   http1      HTTP/1.1 keep-alive: wrk -t1 -c$CONNECTIONS --latency
#   h2         HTTP/2 cleartext (prior knowledge) from h2load -c$H2_CLIENTS -m$H2_STREAMS; to the
#              backends HTTP/2 (h2c) where the proxy can: lbx h2c://, HAProxy `proto h2`,
#              Caddy `versions h2c`; nginx cannot proxy_pass over HTTP/2, it uses HTTP/1.1
#   https      HTTPS keep-alive (wrk, HTTP/1.1 over TLS), the same ECDSA P-256 certificate
#   https-new  HTTPS with `Connection: close`: a TCP connection and TLS handshake per request
#   <any>-log  the same with the access log on, written to a file (http1-log, h2-log, ...):
#              nginx `access_log` (combined), HAProxy `option httplog` on stdout, Caddy `log`
#              (JSON), lbx its default (RUST_LOG unset: INFO lines of target lbx::access).
#              Without -log: nginx `access_log off`, HAProxy and Caddy log no access by default,
#              lbx RUST_LOG=warn.
#   workers2   HTTP/1.1, each proxy with 1 worker, then 2 workers, on cores $WORKERS2_CPUS;
#              wrk and the backends are moved to those cores too (nothing else is left on 2
#              cores), so they take CPU from the proxy: compare the proxies with each other
#   idle10k    $IDLE_CONNS idle keep-alive client connections (each has served one request) to
#              each proxy, $IDLE_ROUNDS rounds: resident memory before, with them open, and
#              after they are closed; KiB per connection and whether memory falls back
#
# Optional environment variables (defaults in brackets):
#   SCENARIOS="..."      scenarios to run, see above              [http1 http1-log h2 https]
#   PROXIES="..."        proxies to measure                       [nginx haproxy caddy lbx]
#   DURATION=10s         measured time per proxy and scenario (wrk syntax: 10s, 1m)    [10s]
#   WARMUP=2s            unmeasured run with the same client before each measurement   [2s]
#   CONNECTIONS=64       wrk connections                                                [64]
#   H2_CLIENTS=16        h2load connections                                             [16]
#   H2_STREAMS=10        h2load concurrent streams per connection                       [10]
#   H2_LATENCY=1         h2load --log-file for p50/p99 (0: no percentiles, less client work) [1]
#   BACKEND=nginx|lbx    the backends: nginx `return 200` (1 worker, access log off), or
#                        `lbx backend` (1 worker each)                               [nginx]
#   PROXY_CPUS=0         taskset CPU list for the proxy under test                       [0]
#   BACKEND_CPUS=0       taskset CPU list for the backends                               [0]
#   CLIENT_CPUS=1        taskset CPU list for wrk/h2load/the idle client (WRK_CPUS too)  [1]
#   WORKERS2_CPUS=0-1    proxy, client and backend CPUs in the workers2 scenario       [0-1]
#   NGINX_KEEPALIVE=N    idle upstream connections nginx keeps per worker, and Caddy per
#                        backend (HAProxy and lbx keep all)        [max(64, CONNECTIONS)]
#   IDLE_CONNS=10000     idle connections in idle10k (lowered to what RLIMIT_NOFILE allows
#                        HAProxy, which needs 2 descriptors per maxconn)             [10000]
#   IDLE_ROUNDS=3        idle10k rounds                                                  [3]
#   BASELINE=1           first measure wrk straight at backend b1, no proxy, to show the
#                        backends are far faster than any proxy (0: skip)                [1]
#   LBX_BIN=path         use this lbx binary, skip `cargo build --release -p lbx`    [build]
#   SKIP_LBX=1           same as leaving lbx out of PROXIES                              [0]
#   RESULTS_DIR=dir      where the markdown report goes                      [bench/results]
#
# Output: a table per scenario on stdout and bench/results/compare-<date>-<time>.md with the
# set-up, a summary of lbx's ratios against each peer, the tables, and the raw client output.
#
# Pinning: with 2 CPUs the proxy under test and the backends share core 0 and the client gets
# core 1, so the load generator never takes CPU from the proxy; all proxies get the same. One
# proxy runs at a time: each is started for its measurement and stopped after it. With a
# single CPU, pinning is dropped.
#
# Duration: about WARMUP + DURATION + 1 s per proxy and scenario, and once for BASELINE:
# ~3.7 min for the default four scenarios and four proxies; workers2 adds ~1.7 min (two runs
# per proxy), idle10k ~25 s per proxy. Plus the release build of lbx unless LBX_BIN is given.
#
# Everything listens on 127.0.0.1 on free ports. Every server runs under `timeout`, so even if
# this script is killed with SIGKILL they stop by themselves; the temp dir is removed on exit.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- settings --
SCENARIOS="${SCENARIOS:-http1 http1-log h2 https}"
PROXIES="${PROXIES:-nginx haproxy caddy lbx}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
CONNECTIONS="${CONNECTIONS:-64}"
H2_CLIENTS="${H2_CLIENTS:-16}"
H2_STREAMS="${H2_STREAMS:-10}"
H2_LATENCY="${H2_LATENCY:-1}"
BACKEND="${BACKEND:-nginx}"
PROXY_CPUS="${PROXY_CPUS:-0}"
BACKEND_CPUS="${BACKEND_CPUS:-0}"
CLIENT_CPUS="${CLIENT_CPUS:-${WRK_CPUS:-1}}"
WORKERS2_CPUS="${WORKERS2_CPUS:-0-1}"
# nginx closes any idle upstream connection beyond `keepalive`; with fewer cached slots than
# client connections it opens and closes upstream connections all the time (keepalive 32 at
# -c64: ~26k TIME_WAIT sockets, 40% fewer req/s). HAProxy (http-reuse always) and lbx keep
# every idle connection; Caddy keeps 32 per backend by default, raised to the same here.
NGINX_KEEPALIVE="${NGINX_KEEPALIVE:-$((CONNECTIONS > 64 ? CONNECTIONS : 64))}"
IDLE_CONNS="${IDLE_CONNS:-10000}"
IDLE_ROUNDS="${IDLE_ROUNDS:-3}"
BASELINE="${BASELINE:-1}"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/bench/results}"

if [[ "${SKIP_LBX:-0}" == 1 ]]; then PROXIES="$(awk '{ for (i = 1; i <= NF; i++) if ($i != "lbx") printf "%s ", $i }' <<<"$PROXIES")"; fi
[[ -n "$PROXIES" ]] || die "PROXIES is empty"
for p in $PROXIES; do
	case "$p" in nginx | haproxy | caddy | lbx) ;; *) die "unknown proxy '$p' (nginx haproxy caddy lbx)" ;; esac
done
case "$BACKEND" in nginx | lbx) ;; *) die "BACKEND must be 'nginx' or 'lbx', got '$BACKEND'" ;; esac
for s in $SCENARIOS; do
	case "$s" in
	http1 | h2 | https | https-new | http1-log | h2-log | https-log | https-new-log | workers2 | idle10k) ;;
	*) die "unknown scenario '$s' (http1 h2 https https-new, each also with -log; workers2 idle10k)" ;;
	esac
done
has() { [[ " $1 " == *" $2 "* ]]; }
if [[ "$(nproc)" -lt 2 ]]; then PROXY_CPUS="" BACKEND_CPUS="" CLIENT_CPUS="" WORKERS2_CPUS=""; fi
WARMUP_S="$(to_seconds "$WARMUP")"
DURATION_S="$(to_seconds "$DURATION")"

declare -A TITLE=(
	[http1]="HTTP/1.1 keep-alive"
	[h2]="HTTP/2 cleartext (h2load), h2c to the backends where the proxy can"
	[https]="HTTPS keep-alive (HTTP/1.1 over TLS)"
	[https-new]="HTTPS, a new connection and TLS handshake per request"
)
declare -A NAME=([nginx]="nginx" [haproxy]="HAProxy" [caddy]="Caddy" [lbx]="lbx")

# ---------------------------------------------------------------- backends --
# Two backends, b1 and b2, each with an HTTP/1.1 port (B1, B2) and a cleartext HTTP/2 port
# (H2B1, H2B2; the same ports with `lbx backend`, which speaks both on one port). Bodies are
# "b1\n" / "b2\n" so a proxy's sanity check can tell it reached one.
BACKEND_TPIDS=()
start_backends() {
	local ttl="$1"
	if [[ "$BACKEND" == lbx ]]; then
		H2B1=$B1 H2B2=$B2
		start backend-b1 "$BACKEND_CPUS" "$ttl" env RUST_LOG=warn "$LBX_BIN" backend --listen "127.0.0.1:$B1" --name b1
		BACKEND_TPIDS=("$START_PID")
		wait_ready backend-b1 "$START_PID" "http://127.0.0.1:$B1/"
		start backend-b2 "$BACKEND_CPUS" "$ttl" env RUST_LOG=warn "$LBX_BIN" backend --listen "127.0.0.1:$B2" --name b2
		BACKEND_TPIDS+=("$START_PID")
		wait_ready backend-b2 "$START_PID" "http://127.0.0.1:$B2/"
		return
	fi
	local dir="$TMP/backend"
	mkdir -p "$dir"
	{
		nginx_head "$dir" 1 8192
		echo "http {"
		nginx_temp_paths "$dir"
		cat <<EOF
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server { listen 127.0.0.1:$B1; listen 127.0.0.1:$H2B1 http2; location / { return 200 "b1\n"; } }
    server { listen 127.0.0.1:$B2; listen 127.0.0.1:$H2B2 http2; location / { return 200 "b2\n"; } }
}
EOF
	} >"$dir/nginx.conf"
	nginx -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" || die "backend nginx config invalid"
	start backend "$BACKEND_CPUS" "$ttl" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
	BACKEND_TPIDS=("$START_PID")
	wait_ready backend "$START_PID" "http://127.0.0.1:$B1/"
	wait_ready backend "$START_PID" "http://127.0.0.1:$B2/"
	wait_ready backend "$START_PID" "http://127.0.0.1:$H2B1/" --http2-prior-knowledge
}

# ----------------------------------------------------------------- proxies --
# Each start_<proxy> RUN PROTO LOG WORKERS MAXCONN PORT [PORT2] writes its configuration to
# $TMP/RUN/ and prints the command line to start it, one argument per line.
# PROTO: http1 | h2 | https | https-new; LOG: on | off.

nginx_cmd() {
	local run="$1" proto="$2" logon="$3" workers="$4" maxconn="$5" port="$6" dir="$TMP/$1" listen
	case "$proto" in
	http1) listen="listen 127.0.0.1:$port;" ;;
	h2) listen="listen 127.0.0.1:$port http2;" ;;
	https*) listen="listen 127.0.0.1:$port ssl http2;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;" ;;
	esac
	{
		nginx_head "$dir" "$workers" "$((maxconn + 1000))"
		echo "http {"
		nginx_temp_paths "$dir"
		if [[ "$logon" == on ]]; then echo "    access_log $dir/access.log;"; else echo "    access_log off;"; fi
		cat <<EOF
    # nginx closes a client keep-alive connection after 1000 requests by default (and upstream
    # ones too); the other proxies have no such limit.
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    upstream backends {
        least_conn;
        server 127.0.0.1:$B1;
        server 127.0.0.1:$B2;
        keepalive $NGINX_KEEPALIVE;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        $listen
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
	} >"$dir/nginx.conf"
	nginx -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >&2 || die "nginx config invalid ($run)"
	printf '%s\n' nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
}

haproxy_cmd() {
	local run="$1" proto="$2" logon="$3" workers="$4" maxconn="$5" port="$6" dir="$TMP/$1" bind srv=""
	case "$proto" in
	http1) bind="bind 127.0.0.1:$port" ;;
	h2) bind="bind 127.0.0.1:$port proto h2" srv=" proto h2" ;;
	https*) bind="bind 127.0.0.1:$port ssl crt $TMP/cert+key.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2" ;;
	esac
	local b1=$B1 b2=$B2
	[[ "$proto" != h2 ]] || b1=$H2B1 b2=$H2B2
	cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread $workers
    # HAProxy needs ~2 descriptors per connection and refuses to start if it cannot raise
    # RLIMIT_NOFILE that far.
    maxconn $maxconn
$([[ "$logon" == on ]] && echo "    log stdout format raw local0" || echo "    # no 'log' line: no access log")

defaults
    mode http
    option http-keep-alive
$([[ "$logon" == on ]] && printf '    log global\n    option httplog')
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend fe
    $bind
    default_backend be

backend be
    balance leastconn
    http-reuse always
    server b1 127.0.0.1:$b1$srv
    server b2 127.0.0.1:$b2$srv
EOF
	haproxy -c -q -f "$dir/haproxy.cfg" >&2 || die "haproxy config invalid ($run)"
	# -db: stay in the foreground; access log lines go to stdout, i.e. $TMP/RUN.log.
	printf '%s\n' haproxy -db -f "$dir/haproxy.cfg"
}

caddy_cmd() {
	local run="$1" proto="$2" logon="$3" workers="$4" port="$6" dir="$TMP/$1" site protocols="h1 h2"
	local up="127.0.0.1:$B1 127.0.0.1:$B2" versions=""
	case "$proto" in
	http1) site="http://127.0.0.1:$port" ;;
	h2) site="http://127.0.0.1:$port" protocols="h1 h2c" up="127.0.0.1:$H2B1 127.0.0.1:$H2B2" versions="versions h2c" ;;
	https*) site="https://127.0.0.1:$port" ;;
	esac
	cat >"$dir/Caddyfile" <<EOF
{
	admin off
	auto_https off
	servers {
		protocols $protocols
	}
}
$site {
$([[ "$proto" == https* ]] && echo "	tls $TMP/cert.pem $TMP/key.pem")
$([[ "$logon" == on ]] && printf '\tlog {\n\t\toutput file %s\n\t}' "$dir/access.log")
	reverse_proxy $up {
		lb_policy least_conn
		transport http {
			keepalive_idle_conns_per_host $NGINX_KEEPALIVE
			$versions
		}
	}
}
EOF
	mkdir -p "$dir/data" "$dir/config"
	XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" \
		caddy validate --config "$dir/Caddyfile" --adapter caddyfile >"$dir/validate.log" 2>&1 ||
		{ tail -n 5 "$dir/validate.log" >&2; die "caddy config invalid ($run)"; }
	# GOMAXPROCS: how many threads run Go code at once, i.e. the worker count.
	printf '%s\n' env GOMAXPROCS="$workers" XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" \
		caddy run --config "$dir/Caddyfile" --adapter caddyfile
}

lbx_cmd() {
	local proto="$2" logon="$3" workers="$4" port="$6" port2="$7" args
	args=(run --workers "$workers" --plugin "$PLUGIN" --admin off --drain-secs 1)
	case "$proto" in
	http1) args+=(--listen "127.0.0.1:$port" --backend "http://127.0.0.1:$B1" --backend "http://127.0.0.1:$B2") ;;
	h2) args+=(--listen "127.0.0.1:$port" --backend "h2c://127.0.0.1:$H2B1" --backend "h2c://127.0.0.1:$H2B2") ;;
	https*) args+=(--listen "127.0.0.1:$port2" --tls-listen "127.0.0.1:$port"
		--tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem"
		--backend "http://127.0.0.1:$B1" --backend "http://127.0.0.1:$B2") ;;
	esac
	# Access log lines are tracing INFO events of target lbx::access, on by default; its
	# stderr goes to $TMP/RUN.log, a file on disk.
	if [[ "$logon" == on ]]; then
		printf '%s\n' env -u RUST_LOG "$LBX_BIN" "${args[@]}"
	else
		printf '%s\n' env RUST_LOG=warn "$LBX_BIN" "${args[@]}"
	fi
}

# start_proxy PROXY RUN PROTO LOG WORKERS CPUS MAXCONN TTL: start it and wait until it answers
# through a backend. Sets PROXY_TPID (`timeout`), PROXY_PID (the server), PROXY_URL, PROXY_PORT
# and CURL_ARGS.
start_proxy() {
	local proxy="$1" run="$2" proto="$3" logon="$4" workers="$5" cpus="$6" maxconn="$7" ttl="$8"
	local port port2 cmd body
	read -r port port2 <<<"$(free_ports 2)"
	PROXY_PORT=$port
	mkdir -p "$TMP/$run"
	mapfile -t cmd < <("${proxy}_cmd" "$run" "$proto" "$logon" "$workers" "$maxconn" "$port" "$port2")
	((${#cmd[@]})) || die "could not configure $proxy ($run)"
	case "$proto" in
	http1) PROXY_URL="http://127.0.0.1:$port/" CURL_ARGS=() ;;
	h2) PROXY_URL="http://127.0.0.1:$port/" CURL_ARGS=(--http2-prior-knowledge) ;;
	https*) PROXY_URL="https://127.0.0.1:$port/" CURL_ARGS=(--insecure) ;;
	esac
	start "$run" "$cpus" "$ttl" "${cmd[@]}"
	PROXY_TPID=$START_PID
	wait_ready "$run" "$PROXY_TPID" "$PROXY_URL" "${CURL_ARGS[@]}"
	PROXY_PID="$(server_pid "$PROXY_TPID")"
	body="$(curl -fsS --max-time 2 "${CURL_ARGS[@]}" "$PROXY_URL")"
	[[ "$body" == b1 || "$body" == b2 ]] || die "$proxy ($run) answered an unexpected body: '$body'"
	log "$run: $proxy is up at $PROXY_URL (pid $PROXY_PID)"
}

# ------------------------------------------------------------- measuring --
# Results, keyed "SCENARIO|PROXY".
declare -A R_RPS R_P50 R_P99 R_ERR R_CPU RAW

# client_cmd PROTO SECONDS URL [LATENCY_LOG]: the load generator's command line, one per line.
client_cmd() {
	local proto="$1" secs="$2" url="$3" lat="${4:-}"
	case "$proto" in
	http1 | https) printf '%s\n' wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --latency "$url" ;;
	https-new) printf '%s\n' wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --latency -H "Connection: close" "$url" ;;
	h2)
		printf '%s\n' h2load -c "$H2_CLIENTS" -m "$H2_STREAMS" -D "$secs"
		[[ -z "$lat" ]] || echo "--log-file=$lat"
		echo "$url"
		;;
	esac
}

# measure KEY PROXY PROTO CPUS: warm up, then measure the running proxy (PROXY_PID, PROXY_URL)
# with its CPU time; store the results under KEY.
measure() {
	local key="$1" proxy="$2" proto="$3" cpus="$4" cmd out="$TMP/out-${1//|/-}.txt" lat="" t0 t1
	local reqs rps p50 p99 err
	mapfile -t cmd < <(client_cmd "$proto" "$WARMUP_S" "$PROXY_URL")
	run_client "$cpus" "$WARMUP_S" "$TMP/warmup.txt" "${cmd[@]}"
	[[ "$proto" != h2 || "$H2_LATENCY" != 1 ]] || lat="$TMP/h2lat-${1//|/-}.tsv"
	mapfile -t cmd < <(client_cmd "$proto" "$DURATION_S" "$PROXY_URL" "$lat")
	log "${key%|*}: ${NAME[$proxy]}: ${cmd[*]}"
	t0="$(cpu_ticks "$PROXY_PID")"
	run_client "$cpus" "$DURATION_S" "$out" "${cmd[@]}"
	t1="$(cpu_ticks "$PROXY_PID")"
	if [[ "$proto" == h2 ]]; then
		read -r reqs rps p50 p99 err <<<"$(parse_h2load "$out" "$lat")"
		[[ -z "$lat" ]] || rm -f "$lat"
	else
		read -r reqs rps p50 p99 err <<<"$(parse_wrk "$out")"
	fi
	R_RPS[$key]=$rps R_P50[$key]=$p50 R_P99[$key]=$p99 R_ERR[$key]=$err
	R_CPU[$key]="$(cpu_us_per_request "$((t1 - t0))" "$reqs")"
	RAW[$key]="$(cat "$out")"
	log "${key%|*}: ${NAME[$proxy]}: $rps req/s, p50 $p50 ms, p99 $p99 ms, $err errors, ${R_CPU[$key]} µs CPU/request"
}

run_load_scenario() {
	local scenario="$1" proto="${1%-log}" logon=off proxy
	[[ "$scenario" != *-log ]] || logon=on
	for proxy in $PROXIES; do
		start_proxy "$proxy" "$proxy-$scenario" "$proto" "$logon" 1 "$PROXY_CPUS" 4096 "$PROXY_TTL"
		measure "$scenario|$proxy" "$proxy" "$proto" "$CLIENT_CPUS"
		stop "$PROXY_TPID"
	done
}

# repin_backends CPUS: move the running backends (every thread) to CPUS.
repin_backends() {
	local tpid p
	[[ -n "$1" ]] || return 0
	for tpid in "${BACKEND_TPIDS[@]}"; do
		for p in $(tree_pids "$(server_pid "$tpid")"); do taskset -a -p -c "$1" "$p" >/dev/null; done
	done
}

run_workers2() {
	local proxy w
	# Nothing is left to pin apart on 2 cores: the backends join the proxy and wrk.
	repin_backends "$WORKERS2_CPUS"
	for proxy in $PROXIES; do
		for w in 1 2; do
			start_proxy "$proxy" "$proxy-workers2-w$w" http1 off "$w" "$WORKERS2_CPUS" 4096 "$PROXY_TTL"
			measure "workers2-w$w|$proxy" "$proxy" http1 "$WORKERS2_CPUS"
			stop "$PROXY_TPID"
		done
	done
	repin_backends "$BACKEND_CPUS"
}

# IDLE_N: the idle connection count every proxy gets (the same for all).
declare -A IDLE_OUT IDLE_KIB
run_idle() {
	local proxy out
	for proxy in $PROXIES; do
		start_proxy "$proxy" "$proxy-idle" http1 off 1 "$PROXY_CPUS" "$((IDLE_N + 50))" "$IDLE_TTL"
		log "idle10k: ${NAME[$proxy]}: $IDLE_ROUNDS rounds of $IDLE_N idle connections"
		out="$TMP/idle-$proxy.txt"
		run_client "$CLIENT_CPUS" "$((IDLE_ROUNDS * 60))" "$out" \
			python3 "$ROOT/bench/idle_conns.py" "$PROXY_PORT" "$IDLE_N" "$IDLE_ROUNDS" "$PROXY_PID"
		IDLE_OUT[$proxy]="$(cat "$out")"
		# KiB per connection: RSS with them open above RSS before the first round, divided by
		# their count; the mean over the rounds.
		IDLE_KIB[idle|$proxy]="$(awk -v n="$IDLE_N" 'NR == 1 { base = $2 } { s += ($3 - base) / n; k++ }
			END { if (k) printf "%.1f", s / k; else printf "n/a" }' "$out")"
		stop "$PROXY_TPID"
	done
}

# ----------------------------------------------------------------- report --
scenario_title() {
	local s="$1" t
	case "$s" in
	workers2) echo "HTTP/1.1 keep-alive, 1 worker vs 2 workers on cores '${WORKERS2_CPUS:-any}', client on the same cores" ;;
	idle10k) echo "$IDLE_N idle keep-alive connections: resident memory" ;;
	*)
		t="${TITLE[${s%-log}]}"
		if [[ "$s" == *-log ]]; then echo "$t, access log on (to a file)"; else echo "$t, access log off"; fi
		;;
	esac
}

# lbx's ratio against each peer for one scenario key prefix: "| a | b | c |" cells.
ratio_cells() {
	local key="$1" arr="$2" p cells=""
	local -n vals="$arr"
	for p in nginx haproxy caddy; do
		if has "$PROXIES" "$p" && has "$PROXIES" lbx; then
			cells+=" $(ratio "${vals[$key|lbx]:-}" "${vals[$key|$p]:-}") |"
		else
			cells+=" – |"
		fi
	done
	echo "$cells"
}

load_table() {
	local key="$1" p
	echo "| proxy | req/s | p50 ms | p99 ms | errors | proxy CPU µs/request |"
	echo "|---|---:|---:|---:|---:|---:|"
	for p in $PROXIES; do
		echo "| ${NAME[$p]}$([[ "$key" != h2* || "$p" != nginx ]] || echo ' ¹') | ${R_RPS[$key|$p]} | ${R_P50[$key|$p]} | ${R_P99[$key|$p]} | ${R_ERR[$key|$p]} | ${R_CPU[$key|$p]} |"
	done
}

idle_section() {
	local p r before open after still base peak last
	echo "| proxy | KiB per connection ¹ (mean of rounds) | RSS before the first round, KiB | after the last close, KiB | falls back ² |"
	echo "|---|---:|---:|---:|---:|"
	for p in $PROXIES; do
		read -r base peak last < <(awk 'NR == 1 { base = $2 } { peak = $3; last = $4 } END { print base + 0, peak + 0, last + 0 }' <<<"${IDLE_OUT[$p]}")
		echo "| ${NAME[$p]} | ${IDLE_KIB[idle|$p]} | $base | $last | $(awk -v b="$base" -v p="$peak" -v l="$last" 'BEGIN {
			v = (p > b) ? (p - l) / (p - b) * 100 : 0; if (v > -0.5 && v < 0.5) v = 0; if (p > b) printf "%.0f%%", v; else printf "n/a" }') |"
	done
	echo
	echo "| proxy | round | RSS before KiB | with $IDLE_N open KiB | KiB per connection ¹ | after close KiB | still open ³ |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for p in $PROXIES; do
		base=""
		while read -r r before open after still; do
			[[ -n "$base" ]] || base=$before
			echo "| ${NAME[$p]} | $r | $before | $open | $(awk -v a="$open" -v b="$base" -v n="$IDLE_N" 'BEGIN { printf "%.1f", (a - b) / n }') | $after | $still |"
		done <<<"${IDLE_OUT[$p]}"
	done
}

versions() {
	local v=()
	has "$PROXIES" nginx && v+=("$(nginx -v 2>&1 | sed 's/^nginx version: //')")
	has "$PROXIES" haproxy && v+=("HAProxy $(haproxy -v | head -n1 | awk '{print $3}')")
	has "$PROXIES" caddy && v+=("Caddy $(caddy version | awk '{print $1}')")
	has "$PROXIES" lbx && v+=("lbx $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD -- host 2>/dev/null || echo ' (host/ modified)')")
	v+=("$(wrk -v 2>&1 | head -n1 | awk '{print "wrk " $2}')")
	command -v h2load >/dev/null && v+=("$(h2load --version | head -n1)")
	local out
	out="$(printf '%s, ' "${v[@]}")"
	echo "${out%, }"
}

write_report() {
	local s p key
	echo "# Proxy comparison: $(for p in $PROXIES; do printf '%s, ' "${NAME[$p]}"; done | sed 's/, $//') ($STAMP)"
	echo
	echo "- one proxy at a time, each with one worker (nginx \`worker_processes 1\`, HAProxy \`nbthread 1\`, Caddy \`GOMAXPROCS=1\`, lbx \`--workers 1\`), least-connections (nginx \`least_conn\`, HAProxy \`leastconn\`, Caddy \`lb_policy least_conn\`, lbx least_conn.wasm), upstream keep-alive (nginx \`keepalive $NGINX_KEEPALIVE\`, HAProxy \`http-reuse always\`, Caddy \`keepalive_idle_conns_per_host $NGINX_KEEPALIVE\`, lbx's pool)"
	if [[ "$BACKEND" == nginx ]]; then
		echo "- backends: one nginx, 1 worker, access log off, \`return 200\` on two HTTP/1.1 ports (b1, b2) and two h2c ports"
	else
		echo "- backends: two \`lbx backend\` (b1, b2), 1 worker each, HTTP/1.1 and h2c on one port"
	fi
	if [[ -n "${R_RPS[baseline|backend]:-}" ]]; then
		echo "- backend b1 alone, wrk straight at it (same client, pinning and duration): ${R_RPS[baseline|backend]} req/s, p99 ${R_P99[baseline|backend]} ms, $(if [[ "$BACKEND" == nginx ]]; then echo "nginx CPU"; else echo "its CPU"; fi) ${R_CPU[baseline|backend]} µs/request"
	fi
	echo "- pinning: proxy CPU '${PROXY_CPUS:-any}', backends '${BACKEND_CPUS:-any}', client '${CLIENT_CPUS:-any}' ($(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))"
	local clients="wrk -t1 -c$CONNECTIONS -d$DURATION --latency"
	if [[ " $SCENARIOS " == *" h2"* ]]; then
		clients+="; h2load -c$H2_CLIENTS -m$H2_STREAMS -D $DURATION_S"
		if [[ "$H2_LATENCY" == 1 ]]; then clients+=" --log-file (p50/p99 from it)"; else clients+=" (no p50/p99: H2_LATENCY=0)"; fi
	fi
	echo "- clients: $clients; each after a $WARMUP warm-up with the same client"
	echo "- proxy CPU µs/request: utime + stime of the proxy's processes over the measured run, divided by the requests completed in it"
	echo "- errors: wrk socket errors (connect, read, write, timeout) + non-2xx/3xx answers; h2load failed requests"
	echo "- versions: $(versions)"
	echo
	if has "$PROXIES" lbx && [[ "$(wc -w <<<"$PROXIES")" -gt 1 ]]; then
		echo "## lbx against its peers (ratios in this run)"
		echo
		echo "req/s: above 1 is lbx faster; CPU/request: below 1 is lbx cheaper."
		echo
		echo "| scenario | req/s lbx/nginx | lbx/HAProxy | lbx/Caddy | CPU/request lbx/nginx | lbx/HAProxy | lbx/Caddy |"
		echo "|---|---:|---:|---:|---:|---:|---:|"
		for s in $SCENARIOS; do
			case "$s" in
			workers2)
				for key in workers2-w1 workers2-w2; do
					echo "| workers2, ${key#workers2-w} worker(s) |$(ratio_cells "$key" R_RPS)$(ratio_cells "$key" R_CPU)"
				done
				;;
			idle10k) echo "| idle10k: KiB per connection | | | |$(ratio_cells idle IDLE_KIB)" ;;
			*) echo "| $s |$(ratio_cells "$s" R_RPS)$(ratio_cells "$s" R_CPU)" ;;
			esac
		done
		echo
	fi
	for s in $SCENARIOS; do
		echo "## $s: $(scenario_title "$s")"
		echo
		case "$s" in
		workers2)
			echo "The proxy, wrk (-t1, the lightest it gets) and the backends all run on cores"
			echo "'${WORKERS2_CPUS:-any}' (there are no others), so the load generator and the backends take"
			echo "CPU from the proxy: the figures compare the proxies with each other and 2 workers with 1,"
			echo "not with the other scenarios."
			echo
			echo "| proxy | 1 worker req/s | 2 workers req/s | 2w/1w | p99 ms 1w / 2w | errors 1w / 2w | CPU µs/request 1w / 2w |"
			echo "|---|---:|---:|---:|---:|---:|---:|"
			for p in $PROXIES; do
				echo "| ${NAME[$p]} | ${R_RPS[workers2-w1|$p]} | ${R_RPS[workers2-w2|$p]} | $(ratio "${R_RPS[workers2-w2|$p]}" "${R_RPS[workers2-w1|$p]}") | ${R_P99[workers2-w1|$p]} / ${R_P99[workers2-w2|$p]} | ${R_ERR[workers2-w1|$p]} / ${R_ERR[workers2-w2|$p]} | ${R_CPU[workers2-w1|$p]} / ${R_CPU[workers2-w2|$p]} |"
			done
			;;
		idle10k)
			[[ "$IDLE_N" == "$IDLE_CONNS" ]] || echo "$IDLE_NOTE"$'\n'
			echo "RSS: VmRSS summed over the proxy's processes (nginx: master + worker). Each connection"
			echo "served one request, then stayed open and idle; every proxy keeps an idle client"
			echo "connection for at least 10 s (lbx's \`timeouts.request_headers\`), longer than a round holds them."
			echo
			idle_section
			echo
			echo "¹ (RSS with the connections open − RSS before the first round) / $IDLE_N."
			echo "² how much of the last round's increase is returned 2 s after its connections close:"
			echo "  (RSS with them open − RSS after the close) / (RSS with them open − RSS before the first round)."
			echo "³ connections the proxy had not closed when the \"with open\" sample was taken."
			;;
		*)
			load_table "$s"
			if [[ "$s" == h2* ]] && has "$PROXIES" nginx; then
				echo
				echo "¹ nginx cannot speak HTTP/2 to a \`proxy_pass\` backend; it uses HTTP/1.1 there."
			fi
			if [[ "$s" == *-log ]]; then
				echo
				echo "Access log: nginx \`access_log\` (combined format), HAProxy \`option httplog\` to stdout"
				echo "(redirected to a file), Caddy \`log { output file }\` (JSON), lbx's default (INFO lines of"
				echo "target \`lbx::access\` on stderr, redirected to a file); all files on the same disk."
			fi
			;;
		esac
		echo
	done
	echo "<details><summary>raw client output</summary>"
	echo
	for key in "${!RAW[@]}"; do echo "$key"; done | sort | while read -r key; do
		echo "### $key"
		echo '```'
		echo "${RAW[$key]}"
		echo '```'
	done
	echo "</details>"
}

# ------------------------------------------------------------------- main --
main() {
	local tools=(nginx:nginx wrk:wrk curl:curl taskset:util-linux pgrep:procps python3:python3 openssl:openssl)
	has "$PROXIES" haproxy && tools+=(haproxy:haproxy)
	has "$PROXIES" caddy && tools+=(caddy:caddy)
	[[ " $SCENARIOS " != *" h2"* ]] || tools+=(h2load:nghttp2-client)
	need_tools "${tools[@]}"
	if has "$PROXIES" lbx || [[ "$BACKEND" == lbx ]]; then lbx_binary; fi

	bench_init
	# Every descriptor the hard limit allows (the idle scenario needs ~IDLE_CONNS per process).
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

	# The idle connection count: HAProxy needs maxsock = 2 * maxconn + ~14 descriptors and
	# refuses to start beyond the hard RLIMIT_NOFILE; every proxy gets the same count.
	IDLE_N=$IDLE_CONNS IDLE_NOTE=""
	local hard
	hard="$(ulimit -Hn)"
	if has "$SCENARIOS" idle10k && has "$PROXIES" haproxy && [[ "$hard" != unlimited ]] &&
		((2 * (IDLE_CONNS + 50) + 100 > hard)); then
		IDLE_N=$(((hard - 100) / 2 - 50))
		IDLE_N=$((IDLE_N / 100 * 100))
		IDLE_NOTE="$IDLE_N connections, not $IDLE_CONNS: the hard RLIMIT_NOFILE here is $hard, and HAProxy needs two descriptors per \`maxconn\` (it refuses to start otherwise); every proxy gets the same count."
		log "idle10k: $IDLE_NOTE"
	fi

	# Time budgets: a proxy lives for one measurement; the backends for the whole run.
	local runs=0 s
	for s in $SCENARIOS; do
		case "$s" in
		workers2) runs=$((runs + 2)) ;;
		idle10k) ;;
		*) runs=$((runs + 1)) ;;
		esac
	done
	local nproxies
	nproxies="$(wc -w <<<"$PROXIES")"
	PROXY_TTL=$((WARMUP_S + DURATION_S + 120))
	IDLE_TTL=$((IDLE_ROUNDS * 120 + 120))
	local backend_ttl=$((nproxies * runs * PROXY_TTL + 120))
	if has "$SCENARIOS" idle10k; then backend_ttl=$((backend_ttl + nproxies * IDLE_TTL)); fi

	read -r B1 B2 H2B1 H2B2 <<<"$(free_ports 4)"
	make_cert "$TMP"
	start_backends "$backend_ttl"
	log "backends ($BACKEND) up: b1 127.0.0.1:$B1, b2 127.0.0.1:$B2"

	if [[ "$BASELINE" == 1 ]]; then
		log "== baseline: wrk straight at backend b1"
		PROXY_PID="$(server_pid "${BACKEND_TPIDS[0]}")" PROXY_URL="http://127.0.0.1:$B1/"
		NAME[backend]="backend b1 alone"
		measure "baseline|backend" backend http1 "$CLIENT_CPUS"
	fi
	for s in $SCENARIOS; do
		log "== $s: $(scenario_title "$s")"
		case "$s" in
		workers2) run_workers2 ;;
		idle10k) run_idle ;;
		*) run_load_scenario "$s" ;;
		esac
	done

	STAMP="$(date +%Y-%m-%d-%H%M%S)"
	mkdir -p "$RESULTS_DIR"
	local report="$RESULTS_DIR/compare-$STAMP.md"
	write_report >"$report"
	# The tables (not the raw output) on stdout.
	sed '/^<details>/,$d' "$report"
	log "report written to ${report#"$ROOT"/}"
}

main "$@"
