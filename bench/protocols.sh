#!/usr/bin/env bash
# HTTPS and HTTP/2 through lbx vs nginx vs HAProxy, each with one worker, the same ECDSA P-256
# certificate and the same nginx `return 200` backends, in one run:
#   https-keepalive  wrk over TLS, keep-alive connections (HTTP/1.1)
#   https-new-conn   wrk over TLS with `Connection: close`: a TCP connection and a full TLS
#                    handshake per request
#   h2c              h2load, cleartext HTTP/2 from the client, to HTTP/2 (h2c) backends where
#                    the proxy can (lbx `h2c://`, HAProxy `proto h2`); nginx cannot speak HTTP/2
#                    to a plain proxy_pass backend, so it uses HTTP/1.1 there (noted in the table)
# For each: requests/s, p99 (wrk) or mean (h2load) latency, and the proxy's own CPU per request
# (utime + stime of its process over the run, divided by the requests).
#
# Run: bash bench/protocols.sh          (from anywhere)
#   DURATION=8      seconds per measurement               [8]
#   CONNECTIONS=64  wrk connections (h2load: 16 x 10 streams) [64]
#   LBX_BIN=path    lbx binary                             [target/release/lbx, built if missing]
#
# Pinning: proxies and backends on CPU 0, the load generator on CPU 1. Everything listens on
# 127.0.0.1 on free ports and is stopped when the script exits.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-8}"
CONNECTIONS="${CONNECTIONS:-64}"
LBX_BIN="${LBX_BIN:-$ROOT/target/release/lbx}"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/bench/results}"
TMP="$(mktemp -d /tmp/lbx-protocols.XXXXXX)"
PIDS=()
log() { printf '[protocols] %s\n' "$*" >&2; }
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

for tool in nginx haproxy wrk h2load openssl taskset python3 curl; do
	command -v "$tool" >/dev/null || {
		log "installing nginx haproxy wrk nghttp2-client openssl"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx haproxy wrk nghttp2-client openssl >/dev/null
		break
	}
done
if [[ ! -x "$LBX_BIN" ]]; then
	(cd "$ROOT" && cargo build --release -p lbx -q)
fi
[[ -f "$ROOT/plugins/least_conn.wasm" ]] || bash "$ROOT/plugins/build.sh" >/dev/null

ports() {
	python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r B1 B2 H2B1 H2B2 NG_TLS NG_H2 HA_TLS HA_H2 LB_PLAIN LB_TLS LB_ADMIN LB2_PLAIN LB2_ADMIN <<<"$(ports 13)"

# One certificate for every proxy.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=bench.test -addext subjectAltName=DNS:bench.test \
	-keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/haproxy.pem"

start() { # name cpu command...
	local name="$1" cpu="$2"; shift 2
	taskset -c "$cpu" "$@" >"$TMP/$name.log" 2>&1 &
	PIDS+=("$!")
	eval "PID_${name}=$!"
}
wait_port() { # port [curl args]
	local port="$1"; shift
	for _ in $(seq 100); do
		curl -fsS -o /dev/null --max-time 1 "$@" "http://127.0.0.1:$port/" 2>/dev/null && return
		curl -fsSk -o /dev/null --max-time 1 "$@" "https://127.0.0.1:$port/" 2>/dev/null && return
		sleep 0.1
	done
	log "nothing answers on $port"; exit 1
}

# Backends: nginx `return 200`, two HTTP/1.1 and two h2c ports, one worker, CPU 0.
mkdir -p "$TMP/backend" "$TMP/proxy-nginx"
cat >"$TMP/backend/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $TMP/backend/pid; error_log $TMP/backend/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$B1; listen 127.0.0.1:$B2; location / { return 200 "ok\n"; } }
  server { listen 127.0.0.1:$H2B1 http2; listen 127.0.0.1:$H2B2 http2; location / { return 200 "ok\n"; } }
}
EOF
start backend 0 nginx -p "$TMP/backend" -e "$TMP/backend/error.log" -c "$TMP/backend/nginx.conf"

cat >"$TMP/proxy-nginx/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $TMP/proxy-nginx/pid; error_log $TMP/proxy-nginx/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream b { least_conn; server 127.0.0.1:$B1; server 127.0.0.1:$B2; keepalive 128; }
  ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem;
  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;
  server { listen 127.0.0.1:$NG_TLS ssl http2; listen 127.0.0.1:$NG_H2 http2;
    location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
EOF
start nginx 0 nginx -p "$TMP/proxy-nginx" -e "$TMP/proxy-nginx/error.log" -c "$TMP/proxy-nginx/nginx.conf"

cat >"$TMP/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8192
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend tls
  bind 127.0.0.1:$HA_TLS ssl crt $TMP/haproxy.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2
  default_backend h1
frontend h2c
  bind 127.0.0.1:$HA_H2 proto h2
  default_backend h2
backend h1
  balance leastconn
  server b1 127.0.0.1:$B1
  server b2 127.0.0.1:$B2
backend h2
  balance leastconn
  server b1 127.0.0.1:$H2B1 proto h2
  server b2 127.0.0.1:$H2B2 proto h2
EOF
start haproxy 0 haproxy -db -f "$TMP/haproxy.cfg"

PLUGIN="$ROOT/plugins/least_conn.wasm"
start lbx 0 env RUST_LOG=warn "$LBX_BIN" run --workers 1 --plugin "$PLUGIN" \
	--listen "127.0.0.1:$LB_PLAIN" --admin "127.0.0.1:$LB_ADMIN" \
	--tls-listen "127.0.0.1:$LB_TLS" --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" \
	--backend "http://127.0.0.1:$B1" --backend "http://127.0.0.1:$B2"
start lbxh2 0 env RUST_LOG=warn "$LBX_BIN" run --workers 1 --plugin "$PLUGIN" \
	--listen "127.0.0.1:$LB2_PLAIN" --admin "127.0.0.1:$LB2_ADMIN" \
	--backend "h2c://127.0.0.1:$H2B1" --backend "h2c://127.0.0.1:$H2B2"
for port in "$B1" "$NG_TLS" "$HA_TLS" "$LB_TLS" "$LB2_PLAIN"; do wait_port "$port"; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
ROWS=()
# measure SCENARIO PROXY PID CLIENT-COMMAND...: warm up, then run with CPU accounting.
measure() {
	local scenario="$1" proxy="$2" pid="$3"; shift 3
	taskset -c 1 "$@" >/dev/null 2>&1 || true # warm-up (the same command)
	local before after out requests rps p99
	before=$(cpu_ticks "$pid")
	out=$(taskset -c 1 "$@" 2>&1)
	after=$(cpu_ticks "$pid")
	if [[ "$1" == wrk ]]; then
		requests=$(awk '/requests in/ {print $1}' <<<"$out")
		rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
		p99=$(awk '$1=="99%" {print $2}' <<<"$out")
	else
		requests=$(awk '/^requests:/ {print $4}' <<<"$out")
		rps=$(awk '/^finished in/ {print $4}' <<<"$out")
		p99="mean $(awk '/^time for request:/ {print $6}' <<<"$out")"
	fi
	local cpu_us
	cpu_us=$(python3 -c "print(round(($after - $before) / $TICK * 1e6 / max($requests, 1), 1))")
	log "$scenario $proxy: $rps req/s, $p99, $cpu_us µs CPU/request"
	ROWS+=("| $scenario | $proxy | $rps | $p99 | $cpu_us |")
}

WRK=(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency)
for proxy in nginx haproxy lbx; do
	case $proxy in nginx) port=$NG_TLS pid=$PID_nginx ;; haproxy) port=$HA_TLS pid=$PID_haproxy ;; lbx) port=$LB_TLS pid=$PID_lbx ;; esac
	measure https-keepalive "$proxy" "$pid" "${WRK[@]}" "https://127.0.0.1:$port/"
	measure https-new-conn "$proxy" "$pid" "${WRK[@]}" -H "Connection: close" "https://127.0.0.1:$port/"
done
H2LOAD=(h2load -c 16 -m 10 -D "$DURATION")
measure h2c "nginx (HTTP/1.1 upstream)" "$PID_nginx" "${H2LOAD[@]}" "http://127.0.0.1:$NG_H2/"
measure h2c "haproxy (proto h2)" "$PID_haproxy" "${H2LOAD[@]}" "http://127.0.0.1:$HA_H2/"
measure h2c "lbx (h2c://)" "$PID_lbxh2" "${H2LOAD[@]}" "http://127.0.0.1:$LB2_PLAIN/"

mkdir -p "$RESULTS_DIR"
REPORT="$RESULTS_DIR/protocols-$(date +%Y-%m-%d-%H%M%S).md"
{
	echo "# HTTPS and HTTP/2: lbx vs nginx vs HAProxy ($(date -u +%Y-%m-%dT%H:%MZ))"
	echo
	echo "- one worker each; proxies and nginx \`return 200\` backends on CPU 0, client on CPU 1"
	echo "- wrk -t1 -c$CONNECTIONS -d${DURATION}s; h2load -c 16 -m 10 -D $DURATION; ECDSA P-256 certificate"
	echo "- versions: $(nginx -v 2>&1 | cut -d/ -f2), $(haproxy -v | head -1 | cut -d' ' -f1-3), lbx $(cd "$ROOT" && git rev-parse --short HEAD)"
	echo
	echo "| scenario | proxy | req/s | p99 (wrk) / mean (h2load) | proxy CPU µs/request |"
	echo "|---|---|---:|---:|---:|"
	printf '%s\n' "${ROWS[@]}"
} >"$REPORT"
cat "$REPORT"
log "report written to $REPORT"
