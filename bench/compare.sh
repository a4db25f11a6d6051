#!/usr/bin/env bash
# lbx against nginx, HAProxy and Caddy, all in front of the same two fast backends, in one run,
# with the same pinning, one worker each, least-connections and upstream keep-alive. Per proxy
# and scenario it reports requests/s, p50/p99 latency, errors and the proxy's own CPU per
# request (utime + stime of its processes over the measured run, divided by the requests), and
# lbx's ratios against each peer; with ROUNDS=N, medians over N alternating rounds; with
# LBX_BASE_BIN, an A/B of this lbx against an older build.
#
# Run (from anywhere; paths are resolved from this file):
#   bash bench/compare.sh
#   SCENARIOS="http1 h2 workers2 idle10k" bash bench/compare.sh
#   ROUNDS=5 SCENARIOS=http1 bash bench/compare.sh
#
# A/B against an older commit (same run, alternating rounds), e.g. HEAD against 31663ba:
#   base="$(bash bench/build_rev.sh 31663ba)"    # prints .../revs/<commit>/lbx
#   LBX_BASE_BIN="$base" PROXIES="lbx lbx_base" SCENARIOS=http1 ROUNDS=5 bash bench/compare.sh
# bench/build_rev.sh builds the revision in a temporary `git worktree` with its own
# CARGO_TARGET_DIR (the working tree and its target/ are left alone; a first build costs a full
# release build: see its header for time and disk). The base gets the same plugin file as lbx
# (plugins/least_conn.wasm, or LBX_PLUGIN) unless LBX_BASE_PLUGIN names another. An lbx older
# than 2397409 loads only lbx:router@0.1.0 plugins; build_rev.sh leaves the revision's own
# least_conn.wasm beside its binary, so once plugins/ builds a newer contract, compare the
# hosts alone by giving both that plugin:
#   LBX_PLUGIN="${base%/lbx}/least_conn.wasm" LBX_BASE_BIN="$base" PROXIES="lbx lbx_base" ...
# (LBX_BASE_PLUGIN defaults to LBX_PLUGIN). The A/B table ("lbx against lbx (base)") gives
# lbx/base for req/s, CPU per request and p99, each the median of the per-round ratios with
# their min–max. PROXIES="lbx lbx_base" needs nginx only (the backends) and wrk.
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
#   PROXIES="..."        proxies to measure, of nginx haproxy caddy lbx lbx_base
#                                                                 [nginx haproxy caddy lbx]
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
#   LBX_PLUGIN=path      the plugin lbx loads                      [plugins/least_conn.wasm]
#   SKIP_LBX=1           same as leaving lbx out of PROXIES                              [0]
#   RESULTS_DIR=dir      where the markdown report goes                      [bench/results]
#   ROUNDS=1             rounds per scenario, see "Rounds" below                          [1]
#   LBX_BASE_BIN=path    an older lbx binary: adds the proxy lbx_base, "lbx (base)" in the
#                        report, run exactly like lbx (after lbx in PROXIES unless placed)  []
#   LBX_BASE_PLUGIN=path the plugin lbx_base loads                           [LBX_PLUGIN's]
#   LBX_CONFIG=path      a TOML file lbx loads with --config; the flags above (listener,
#                        backends, plugin, workers, admin off) override its values, so it adds
#                        settings such as [[plugin.shadow]] (bench/shadow.sh uses it)        []
#   LBX_BASE_CONFIG=path the same for lbx_base                                             []
#
# Rounds: every scenario but idle10k (whose IDLE_ROUNDS are its own) is measured ROUNDS
# times, round after round; within a round each proxy in turn is started, warmed up, measured
# and stopped, and the order rotates by one each round (round 1: nginx haproxy caddy lbx,
# round 2: haproxy caddy lbx nginx, ...; with "lbx lbx_base": lbx first, then lbx (base)
# first, ...) so no proxy always runs first or last. A table cell is the median over the rounds
# with (min–max); errors are summed; a ratio is taken within each round, between measurements
# of that round, and the cell is the median of those ratios with their (min–max). The report
# keeps every measurement in a "per round" table under each scenario. ROUNDS=1 is a single
# measurement per proxy and scenario, reported as before. The BASELINE run is done once.
#
# Output: a table per scenario on stdout and bench/results/compare-<date>-<time>.md with the
# set-up, the A/B of lbx against lbx (base) if measured, a summary of lbx's ratios against
# each peer, the tables (and per-round tables), and the raw client output.
#
# Pinning: with 2 CPUs the proxy under test and the backends share core 0 and the client gets
# core 1, so the load generator never takes CPU from the proxy; all proxies get the same. One
# proxy runs at a time: each is started for its measurement and stopped after it. With a
# single CPU, pinning is dropped.
#
# Duration: about WARMUP + DURATION + 1 s per proxy, scenario and round, and once for
# BASELINE: ~3.7 min for the default four scenarios and four proxies with one round; workers2
# adds ~1.7 min per round (two runs per proxy), idle10k ~25 s per proxy. Plus the release
# build of lbx unless LBX_BIN is given.
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
ROUNDS="${ROUNDS:-1}"
LBX_BASE_BIN="${LBX_BASE_BIN:-}"
LBX_BASE_PLUGIN="${LBX_BASE_PLUGIN:-$PLUGIN}"
LBX_CONFIG="${LBX_CONFIG:-}"
LBX_BASE_CONFIG="${LBX_BASE_CONFIG:-}"

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a whole number of at least 1, got '$ROUNDS'"
has() { [[ " $1 " == *" $2 "* ]]; }
if [[ "${SKIP_LBX:-0}" == 1 ]]; then PROXIES="$(awk '{ for (i = 1; i <= NF; i++) if ($i != "lbx") printf "%s ", $i }' <<<"$PROXIES")"; fi
# LBX_BASE_BIN adds lbx_base right after lbx (or last) unless PROXIES names it already.
if [[ -n "$LBX_BASE_BIN" ]] && ! has "$PROXIES" lbx_base; then
	if has "$PROXIES" lbx; then PROXIES="$(sed -E 's/(^| )lbx( |$)/\1lbx lbx_base\2/' <<<"$PROXIES")"; else PROXIES="$PROXIES lbx_base"; fi
fi
[[ -n "${PROXIES// /}" ]] || die "PROXIES is empty"
for p in $PROXIES; do
	case "$p" in nginx | haproxy | caddy | lbx | lbx_base) ;; *) die "unknown proxy '$p' (nginx haproxy caddy lbx lbx_base)" ;; esac
done
[[ "$(tr ' ' '\n' <<<"$PROXIES" | sed '/^$/d' | sort | uniq -d)" == "" ]] || die "PROXIES names a proxy twice: '$PROXIES'"
if has "$PROXIES" lbx_base; then
	[[ -n "$LBX_BASE_BIN" ]] || die "PROXIES has lbx_base but LBX_BASE_BIN is not set (the older lbx to compare with; bash bench/build_rev.sh REV builds one)"
	[[ -x "$LBX_BASE_BIN" ]] || die "LBX_BASE_BIN is not an executable file: $LBX_BASE_BIN"
	[[ -f "$LBX_BASE_PLUGIN" || "$LBX_BASE_PLUGIN" == "$PLUGIN" ]] || die "LBX_BASE_PLUGIN does not exist: $LBX_BASE_PLUGIN"
fi
for c in "$LBX_CONFIG" "$LBX_BASE_CONFIG"; do [[ -z "$c" || -f "$c" ]] || die "no such lbx config file: $c"; done
case "$BACKEND" in nginx | lbx) ;; *) die "BACKEND must be 'nginx' or 'lbx', got '$BACKEND'" ;; esac
for s in $SCENARIOS; do
	case "$s" in
	http1 | h2 | https | https-new | http1-log | h2-log | https-log | https-new-log | workers2 | idle10k) ;;
	*) die "unknown scenario '$s' (http1 h2 https https-new, each also with -log; workers2 idle10k)" ;;
	esac
done
if [[ "$(nproc)" -lt 2 ]]; then PROXY_CPUS="" BACKEND_CPUS="" CLIENT_CPUS="" WORKERS2_CPUS=""; fi
WARMUP_S="$(to_seconds "$WARMUP")"
DURATION_S="$(to_seconds "$DURATION")"

declare -A TITLE=(
	[http1]="HTTP/1.1 keep-alive"
	[h2]="HTTP/2 cleartext (h2load), h2c to the backends where the proxy can"
	[https]="HTTPS keep-alive (HTTP/1.1 over TLS)"
	[https-new]="HTTPS, a new connection and TLS handshake per request"
)
declare -A NAME=([nginx]="nginx" [haproxy]="HAProxy" [caddy]="Caddy" [lbx]="lbx" [lbx_base]="lbx (base)")

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

# lbx and lbx_base (the A/B's older binary, with its own plugin) run alike.
lbx_cmd() { lbx_run_cmd "$LBX_BIN" "$PLUGIN" "$LBX_CONFIG" "$@"; }
lbx_base_cmd() { lbx_run_cmd "$LBX_BASE_BIN" "$LBX_BASE_PLUGIN" "$LBX_BASE_CONFIG" "$@"; }

# lbx_run_cmd BIN PLUGIN CONFIG RUN PROTO LOG WORKERS MAXCONN PORT PORT2 (CONFIG may be empty)
lbx_run_cmd() {
	local bin="$1" plugin="$2" config="$3"
	shift 3
	local proto="$2" logon="$3" workers="$4" port="$6" port2="$7" args=(run)
	[[ -z "$config" ]] || args+=(--config "$config")
	args+=(--workers "$workers" --plugin "$plugin" --admin off --drain-secs 1)
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
		printf '%s\n' env -u RUST_LOG "$bin" "${args[@]}"
	else
		printf '%s\n' env RUST_LOG=warn "$bin" "${args[@]}"
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
# Results of one measurement, keyed "SCENARIO|PROXY#ROUND" (rounds from 1; the baseline and
# idle10k have round 1 only). ORDER["SCENARIO#ROUND"]: the proxies in the order they ran.
declare -A R_RPS R_P50 R_P99 R_ERR R_CPU RAW ORDER

# round_order ROUND: PROXIES rotated left by ROUND - 1, so each proxy takes each place in turn.
round_order() {
	local -a list
	read -r -a list <<<"$PROXIES"
	local n=${#list[@]} i
	for ((i = 0; i < n; i++)); do printf '%s ' "${list[(i + $1 - 1) % n]}"; done
}

# round_label ROUND: " round R/N" when there are several rounds, else nothing.
round_label() { ((ROUNDS == 1)) || printf ' round %s/%s' "$1" "$ROUNDS"; }

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
# with its CPU time; store the results under KEY ("SCENARIO|PROXY#ROUND").
measure() {
	local key="$1" proxy="$2" proto="$3" cpus="$4" file="${1//|/-}" cmd lat="" t0 t1 label
	local out="$TMP/out-${file//#/-r}.txt" reqs rps p50 p99 err
	label="${key%%|*}$(round_label "${key##*#}")"
	mapfile -t cmd < <(client_cmd "$proto" "$WARMUP_S" "$PROXY_URL")
	run_client "$cpus" "$WARMUP_S" "$TMP/warmup.txt" "${cmd[@]}"
	[[ "$proto" != h2 || "$H2_LATENCY" != 1 ]] || lat="$TMP/h2lat-${file//#/-r}.tsv"
	mapfile -t cmd < <(client_cmd "$proto" "$DURATION_S" "$PROXY_URL" "$lat")
	log "$label: ${NAME[$proxy]}: ${cmd[*]}"
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
	log "$label: ${NAME[$proxy]}: $rps req/s, p50 $p50 ms, p99 $p99 ms, $err errors, ${R_CPU[$key]} µs CPU/request"
}

# A load scenario: ROUNDS rounds, each proxy started, measured and stopped once per round.
run_load_scenario() {
	local scenario="$1" proto="${1%-log}" logon=off proxy r
	[[ "$scenario" != *-log ]] || logon=on
	for ((r = 1; r <= ROUNDS; r++)); do
		for proxy in $(round_order "$r"); do
			ORDER[$scenario#$r]+="$proxy "
			start_proxy "$proxy" "$proxy-$scenario-r$r" "$proto" "$logon" 1 "$PROXY_CPUS" 4096 "$PROXY_TTL"
			measure "$scenario|$proxy#$r" "$proxy" "$proto" "$CLIENT_CPUS"
			stop "$PROXY_TPID"
		done
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
	local proxy w r
	# Nothing is left to pin apart on 2 cores: the backends join the proxy and wrk.
	repin_backends "$WORKERS2_CPUS"
	for ((r = 1; r <= ROUNDS; r++)); do
		for proxy in $(round_order "$r"); do
			ORDER[workers2#$r]+="$proxy "
			for w in 1 2; do
				start_proxy "$proxy" "$proxy-workers2-w$w-r$r" http1 off "$w" "$WORKERS2_CPUS" 4096 "$PROXY_TTL"
				measure "workers2-w$w|$proxy#$r" "$proxy" http1 "$WORKERS2_CPUS"
				stop "$PROXY_TPID"
			done
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
		IDLE_KIB[idle|$proxy#1]="$(awk -v n="$IDLE_N" 'NR == 1 { base = $2 } { s += ($3 - base) / n; k++ }
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

# round_values ARRAY KEY: ARRAY[KEY#1], ARRAY[KEY#2], ... one a line, while they exist.
round_values() {
	local -n rv_arr="$1"
	local r
	for ((r = 1; ; r++)); do
		[[ -n "${rv_arr[$2#$r]+set}" ]] || break
		echo "${rv_arr[$2#$r]}"
	done
}

# cell ARRAY KEY FORMAT: one figure over the rounds, "median (min–max)" (median_range), or
# the figure itself when there is one round.
cell() {
	local -a vals
	mapfile -t vals < <(round_values "$1" "$2")
	if ((${#vals[@]} == 1)); then printf '%s' "${vals[0]}"; else median_range "$3" "${vals[@]}"; fi
}

# error_cell KEY: errors summed over the rounds.
error_cell() {
	local -a vals
	mapfile -t vals < <(round_values R_ERR "$1")
	sum_values "${vals[@]}"
}

# ratio_cell ARRAY KEY_A KEY_B: A/B in each round (both measured in that round), then the
# median of those ratios with their min–max.
ratio_cell() {
	local -n rc_arr="$1"
	local a="$2" b="$3" r ratios=()
	for ((r = 1; ; r++)); do
		[[ -n "${rc_arr[$a#$r]+set}" && -n "${rc_arr[$b#$r]+set}" ]] || break
		ratios+=("$(ratio "${rc_arr[$a#$r]}" "${rc_arr[$b#$r]}" 4)")
	done
	if ((${#ratios[@]})); then median_range "%.2f" "${ratios[@]}"; else printf 'n/a'; fi
}

# lbx's ratio against each peer for one scenario key prefix: "| a | b | c |" cells.
ratio_cells() {
	local key="$1" arr="$2" p cells=""
	for p in nginx haproxy caddy; do
		if has "$PROXIES" "$p" && has "$PROXIES" lbx; then
			cells+=" $(ratio_cell "$arr" "$key|lbx" "$key|$p") |"
		else
			cells+=" – |"
		fi
	done
	echo "$cells"
}

# has_peer: lbx and at least one of nginx, HAProxy, Caddy are measured.
has_peer() {
	has "$PROXIES" lbx && { has "$PROXIES" nginx || has "$PROXIES" haproxy || has "$PROXIES" caddy; }
}

# The A/B: lbx against lbx (base), one scenario key prefix: req/s, CPU/request and p99 cells.
ab_cells() {
	echo " $(ratio_cell R_RPS "$1|lbx" "$1|lbx_base") | $(ratio_cell R_CPU "$1|lbx" "$1|lbx_base") | $(ratio_cell R_P99 "$1|lbx" "$1|lbx_base") |"
}

errors_head() { if ((ROUNDS == 1)); then echo "errors"; else echo "errors (all rounds)"; fi; }

load_table() {
	local key="$1" p k
	echo "| proxy | req/s | p50 ms | p99 ms | $(errors_head) | proxy CPU µs/request |"
	echo "|---|---:|---:|---:|---:|---:|"
	for p in $PROXIES; do
		k="$key|$p"
		echo "| ${NAME[$p]}$([[ "$key" != h2* || "$p" != nginx ]] || echo ' ¹') | $(cell R_RPS "$k" %.0f) | $(cell R_P50 "$k" %.2f) | $(cell R_P99 "$k" %.2f) | $(error_cell "$k") | $(cell R_CPU "$k" %.1f) |"
	done
}

# round_table SCENARIO KEY...: every measurement of the scenario, round by round in the order
# the proxies ran; KEY: the scenario's key prefixes (workers2 has two).
round_table() {
	local scenario="$1" r i p key k
	shift
	echo "| round | place | proxy | req/s | p50 ms | p99 ms | errors | proxy CPU µs/request |"
	echo "|---:|---:|---|---:|---:|---:|---:|---:|"
	for ((r = 1; r <= ROUNDS; r++)); do
		i=0
		for p in ${ORDER[$scenario#$r]}; do
			i=$((i + 1))
			for key in "$@"; do
				k="$key|$p#$r"
				echo "| $r | $i | ${NAME[$p]}$([[ "$key" != workers2-w* ]] || echo ", ${key#workers2-w} worker(s)") | ${R_RPS[$k]} | ${R_P50[$k]} | ${R_P99[$k]} | ${R_ERR[$k]} | ${R_CPU[$k]} |"
			done
		done
	done
}

idle_section() {
	local p r before open after still base peak last
	echo "| proxy | KiB per connection ¹ (mean of rounds) | RSS before the first round, KiB | after the last close, KiB | falls back ² |"
	echo "|---|---:|---:|---:|---:|"
	for p in $PROXIES; do
		read -r base peak last < <(awk 'NR == 1 { base = $2 } { peak = $3; last = $4 } END { print base + 0, peak + 0, last + 0 }' <<<"${IDLE_OUT[$p]}")
		echo "| ${NAME[$p]} | ${IDLE_KIB[idle|$p#1]} | $base | $last | $(awk -v b="$base" -v p="$peak" -v l="$last" 'BEGIN {
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
	has "$PROXIES" lbx_base && v+=("lbx (base) $(base_revision)")
	command -v wrk >/dev/null && v+=("$(wrk -v 2>&1 | head -n1 | awk '{print "wrk " $2}')")
	command -v h2load >/dev/null && v+=("$(h2load --version | head -n1)")
	local out
	out="$(printf '%s, ' "${v[@]}")"
	echo "${out%, }"
}

# base_revision: the commit LBX_BASE_BIN was built from, as bench/build_rev.sh recorded it
# beside the binary (commit.txt), else "(commit unknown)".
base_revision() {
	local f
	f="$(dirname "$LBX_BASE_BIN")/commit.txt"
	if [[ -f "$f" ]]; then cut -d' ' -f1 "$f"; else echo "(commit unknown)"; fi
}

# binaries: which lbx files ran, with a short SHA-256 each (equal hashes: the same binary).
binaries() {
	local f
	if has "$PROXIES" lbx || [[ "$BACKEND" == lbx ]]; then
		echo "- lbx: \`${LBX_BIN#"$ROOT"/}\` (sha256 $(sha256_short "$LBX_BIN")), plugin \`${PLUGIN#"$ROOT"/}\` (sha256 $(sha256_short "$PLUGIN"))"
	fi
	if has "$PROXIES" lbx_base; then
		f="$(dirname "$LBX_BASE_BIN")/commit.txt"
		echo "- lbx (base): \`$LBX_BASE_BIN\` (sha256 $(sha256_short "$LBX_BASE_BIN"))$([[ ! -f "$f" ]] || echo ", built from $(cat "$f")"), plugin \`${LBX_BASE_PLUGIN#"$ROOT"/}\` (sha256 $(sha256_short "$LBX_BASE_PLUGIN")); run exactly as lbx is$([[ "$LBX_CONFIG" == "$LBX_BASE_CONFIG" ]] || echo " but for its --config")"
	fi
	config_shown lbx "$LBX_CONFIG"
	has "$PROXIES" lbx_base && config_shown "lbx (base)" "$LBX_BASE_CONFIG"
	return 0
}

# config_shown NAME FILE: the --config file an lbx ran with, verbatim (nothing without one).
config_shown() {
	[[ -n "$2" ]] || return 0
	printf -- '- %s ran with `--config %s`:\n\n```toml\n%s\n```\n' "$1" "$2" "$(cat "$2")"
}

write_report() {
	local s p key r
	echo "# Proxy comparison: $(for p in $PROXIES; do printf '%s, ' "${NAME[$p]}"; done | sed 's/, $//') ($STAMP)"
	echo
	echo "- one proxy at a time, each with one worker (nginx \`worker_processes 1\`, HAProxy \`nbthread 1\`, Caddy \`GOMAXPROCS=1\`, lbx \`--workers 1\`), least-connections (nginx \`least_conn\`, HAProxy \`leastconn\`, Caddy \`lb_policy least_conn\`, lbx least_conn.wasm), upstream keep-alive (nginx \`keepalive $NGINX_KEEPALIVE\`, HAProxy \`http-reuse always\`, Caddy \`keepalive_idle_conns_per_host $NGINX_KEEPALIVE\`, lbx's pool)"
	if [[ "$BACKEND" == nginx ]]; then
		echo "- backends: one nginx, 1 worker, access log off, \`return 200\` on two HTTP/1.1 ports (b1, b2) and two h2c ports"
	else
		echo "- backends: two \`lbx backend\` (b1, b2), 1 worker each, HTTP/1.1 and h2c on one port"
	fi
	if [[ -n "${R_RPS[baseline|backend#1]:-}" ]]; then
		echo "- backend b1 alone, wrk straight at it (same client, pinning and duration; measured once): ${R_RPS[baseline|backend#1]} req/s, p99 ${R_P99[baseline|backend#1]} ms, $(if [[ "$BACKEND" == nginx ]]; then echo "nginx CPU"; else echo "its CPU"; fi) ${R_CPU[baseline|backend#1]} µs/request"
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
	binaries
	if ((ROUNDS > 1)); then
		local orders=""
		for ((r = 1; r <= ROUNDS && r <= 3; r++)); do
			orders+="round $r: $(for p in $(round_order "$r"); do printf '%s, ' "${NAME[$p]}"; done | sed 's/, $//'); "
		done
		orders="${orders%; }"
		((ROUNDS <= 3)) || orders+="; …"
		echo "- $ROUNDS rounds per scenario$(has "$SCENARIOS" idle10k && echo " (idle10k: one)"), one measurement of each proxy per round, the order rotated by one each round so no proxy always runs first ($orders)"
		echo "- figures: the median over the rounds, (min–max) after it; errors: summed over the rounds; ratios: the ratio in each round (both measured in it), then the median of those with their (min–max). Every measurement: \"per round\" under each scenario"
	fi
	echo
	if has "$PROXIES" lbx && has "$PROXIES" lbx_base; then
		echo "## lbx against lbx (base): A/B in this run"
		echo
		echo "lbx ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'), this working tree) against lbx (base) $(base_revision), binaries and plugins above. req/s: above 1 is lbx faster; CPU/request and p99: below 1 is lbx cheaper, quicker."
		echo
		echo "| scenario | req/s lbx/base | CPU/request lbx/base | p99 lbx/base |"
		echo "|---|---:|---:|---:|"
		for s in $SCENARIOS; do
			case "$s" in
			workers2) for key in workers2-w1 workers2-w2; do echo "| workers2, ${key#workers2-w} worker(s) |$(ab_cells "$key")"; done ;;
			idle10k) echo "| idle10k: KiB per connection, lbx/base $(ratio_cell IDLE_KIB "idle|lbx" "idle|lbx_base") | – | – | – |" ;;
			*) echo "| $s |$(ab_cells "$s")" ;;
			esac
		done
		echo
	fi
	if has_peer; then
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
			echo "| proxy | 1 worker req/s | 2 workers req/s | 2w/1w | p99 ms 1w / 2w | $(errors_head) 1w / 2w | CPU µs/request 1w / 2w |"
			echo "|---|---:|---:|---:|---:|---:|---:|"
			for p in $PROXIES; do
				local w1="workers2-w1|$p" w2="workers2-w2|$p"
				echo "| ${NAME[$p]} | $(cell R_RPS "$w1" %.0f) | $(cell R_RPS "$w2" %.0f) | $(ratio_cell R_RPS "$w2" "$w1") | $(cell R_P99 "$w1" %.2f) / $(cell R_P99 "$w2" %.2f) | $(error_cell "$w1") / $(error_cell "$w2") | $(cell R_CPU "$w1" %.1f) / $(cell R_CPU "$w2" %.1f) |"
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
		if ((ROUNDS > 1)) && [[ "$s" != idle10k ]]; then
			echo "### $s per round"
			echo
			if [[ "$s" == workers2 ]]; then round_table "$s" workers2-w1 workers2-w2; else round_table "$s" "$s"; fi
			echo
		fi
	done
	echo "<details><summary>raw client output</summary>"
	echo
	for key in "${!RAW[@]}"; do echo "$key"; done | sort -V | while read -r key; do
		echo "### ${key%#*}$(round_label "${key##*#}")"
		echo '```'
		echo "${RAW[$key]}"
		echo '```'
	done
	echo "</details>"
}

# ------------------------------------------------------------------- main --
main() {
	# nginx for the backends or as a proxy; wrk for every scenario but h2 and idle10k, and for
	# the baseline; h2load for h2; HAProxy and Caddy only when measured.
	local tools=(curl:curl taskset:util-linux pgrep:procps python3:python3 openssl:openssl) s
	if [[ "$BACKEND" == nginx ]] || has "$PROXIES" nginx; then tools+=(nginx:nginx); fi
	local wants_wrk="$BASELINE"
	for s in $SCENARIOS; do case "$s" in h2 | h2-log | idle10k) ;; *) wants_wrk=1 ;; esac; done
	[[ "$wants_wrk" != 1 ]] || tools+=(wrk:wrk)
	has "$PROXIES" haproxy && tools+=(haproxy:haproxy)
	has "$PROXIES" caddy && tools+=(caddy:caddy)
	[[ " $SCENARIOS " != *" h2"* ]] || tools+=(h2load:nghttp2-client)
	need_tools "${tools[@]}"
	if has "$PROXIES" lbx || [[ "$BACKEND" == lbx ]]; then lbx_binary; fi
	if has "$PROXIES" lbx_base; then
		# The default base plugin is PLUGIN, built here if missing.
		[[ "$LBX_BASE_PLUGIN" != "$PLUGIN" ]] || lbx_plugin
		log "lbx (base): LBX_BASE_BIN=$LBX_BASE_BIN, plugin $LBX_BASE_PLUGIN"
	fi

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
	local runs=0
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
	local backend_ttl=$((nproxies * runs * ROUNDS * PROXY_TTL + 120))
	if has "$SCENARIOS" idle10k; then backend_ttl=$((backend_ttl + nproxies * IDLE_TTL)); fi

	read -r B1 B2 H2B1 H2B2 <<<"$(free_ports 4)"
	make_cert "$TMP"
	start_backends "$backend_ttl"
	log "backends ($BACKEND) up: b1 127.0.0.1:$B1, b2 127.0.0.1:$B2"

	if [[ "$BASELINE" == 1 ]]; then
		log "== baseline: wrk straight at backend b1"
		PROXY_PID="$(server_pid "${BACKEND_TPIDS[0]}")" PROXY_URL="http://127.0.0.1:$B1/"
		NAME[backend]="backend b1 alone"
		measure "baseline|backend#1" backend http1 "$CLIENT_CPUS"
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
