# Shared shell for the benchmark scripts (compare.sh, swap.sh, build_rev.sh). Source it, do not run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# What it gives:
#   log, die                      messages on stderr, prefixed with the script's name
#   to_seconds                    "10s"/"2m"/"10" -> 10/120/10
#   bench_init                    a temp dir ($TMP) and an EXIT trap that stops every server
#                                 started with `start` and removes $TMP
#   start, stop                   a server under `timeout` (so it dies by itself even if this
#                                 script is SIGKILLed), optionally pinned with taskset
#   wait_ready                    poll a URL with curl until it answers 2xx
#   free_ports                    N distinct free TCP ports on 127.0.0.1
#   need_tools                    apt-get install whatever is missing
#   lbx_binary, lbx_plugin        $LBX_BIN, or `cargo build --release -p lbx`; the plugin
#   cargo_target_dir, sha256_short where cargo puts binaries; a short hash to tell them apart
#   tree_pids, cpu_ticks, rss_kb  a process tree's pids, utime+stime (ticks) and VmRSS (KiB)
#   run_client                    a pinned load generator under `timeout`, interruptible
#   parse_wrk, parse_h2load       "requests req/s p50_ms p99_ms errors" from their output
#   ratio, cpu_us_per_request,    arithmetic for the reports
#   median_range, sum_values
#   make_cert                     the ECDSA P-256 self-signed certificate every proxy serves
#   nginx_head, nginx_temp_paths  the top of an nginx.conf that runs from a temp dir
#
# Everything here listens on 127.0.0.1 only.

# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_NAME="${BENCH_NAME:-$(basename "${BASH_SOURCE[1]:-bench}" .sh)}"
TICK="$(getconf CLK_TCK)"

log() { printf '[%s] %s\n' "$BENCH_NAME" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# to_seconds DURATION: wrk-style duration ("10s", "2m", "1h", "10") -> whole seconds.
to_seconds() {
	local d="$1"
	case "$d" in
	*ms) echo 1 ;;
	*s) echo "${d%s}" ;;
	*m) echo $((${d%m} * 60)) ;;
	*h) echo $((${d%h} * 3600)) ;;
	*) echo "$d" ;;
	esac
}

# pin CPUS: set PIN to the command prefix that restricts a program to CPUS (taskset list),
# empty when CPUS is empty or the machine has a single CPU. An array, so it also works
# behind `timeout`.
PIN=()
pin() {
	PIN=()
	if [[ -n "$1" && "$(nproc)" -ge 2 ]]; then PIN=(taskset -c "$1"); fi
}

# ------------------------------------------------------------- lifetime --
TMP=
PIDS=()
CLIENT_PID=

bench_cleanup() {
	local pid
	trap - EXIT INT TERM
	[[ -z "$CLIENT_PID" ]] || kill -TERM "$CLIENT_PID" 2>/dev/null || true
	# TERM to `timeout` is passed on to the server's process group (nginx master and
	# workers, haproxy, caddy, lbx).
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	[[ -z "$TMP" ]] || rm -rf "$TMP"
}

# bench_init: make $TMP and install the traps. INT/TERM exit at once (cleanup runs on EXIT).
bench_init() {
	TMP="$(mktemp -d "/tmp/lbx-$BENCH_NAME.XXXXXX")"
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# start NAME CPUS TTL CMD...: run a server in the background under `timeout TTL` (seconds),
# pinned to CPUS (may be empty), stdout+stderr to $TMP/NAME.log. Sets START_PID (the pid of
# `timeout`; the server is its child, see server_pid).
START_PID=
start() {
	local name="$1" cpus="$2" ttl="$3"
	shift 3
	pin "$cpus"
	timeout --kill-after=5 "$ttl" "${PIN[@]}" "$@" >"$TMP/$name.log" 2>&1 &
	START_PID=$!
	PIDS+=("$START_PID")
}

# stop PID: stop a server started with `start` (TERM, then KILL after 10 s) and reap it.
stop() {
	local pid="$1" i p
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		for p in $(tree_pids "$pid"); do kill -KILL "$p" 2>/dev/null || true; done
	fi
	wait "$pid" 2>/dev/null || true
	local left=()
	for p in "${PIDS[@]}"; do [[ "$p" == "$pid" ]] || left+=("$p"); done
	PIDS=("${left[@]}")
}

# server_pid PID: the server process under the `timeout` whose pid `start` returned.
server_pid() {
	local child
	child="$(pgrep -P "$1" | head -n1)"
	[[ -n "$child" ]] || die "no process under pid $1"
	echo "$child"
}

# wait_ready NAME PID URL [CURL ARGS...]: poll URL until it answers 2xx; die if the server
# (started as NAME, `timeout` pid PID) exits first or READY_TIMEOUT seconds pass.
READY_TIMEOUT="${READY_TIMEOUT:-20}"
wait_ready() {
	local name="$1" pid="$2" url="$3" deadline=$((SECONDS + READY_TIMEOUT))
	shift 3
	while ! curl -fsS -o /dev/null --max-time 1 "$@" "$url" 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$TMP/$name.log" >&2 || true
			die "$name exited before answering $url"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 20 "$TMP/$name.log" >&2 || true
			die "$name did not answer $url within ${READY_TIMEOUT}s"
		fi
		sleep 0.1
	done
}

# free_ports N: print N distinct free TCP ports on 127.0.0.1. All sockets stay open until
# every port is picked, so the kernel never hands one out twice.
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

# need_tools COMMAND:PACKAGE...: apt-get install the packages whose command is missing.
need_tools() {
	local spec missing=() sudo=()
	for spec in "$@"; do
		command -v "${spec%%:*}" >/dev/null || missing+=("${spec#*:}")
	done
	((${#missing[@]})) || return 0
	log "installing: ${missing[*]}"
	[[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	# The Debian packages of nginx, haproxy and caddy start their service where systemd runs;
	# those listen on :80 and do not disturb the free ports used here, so they are left alone.
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
}

# lbx_binary: set LBX_BIN (given, or built with `cargo build --release -p lbx` in cargo's
# target directory, CARGO_TARGET_DIR included) and make sure the plugin exists (lbx_plugin).
# PLUGIN: the routing plugin lbx runs with, LBX_PLUGIN if given.
PLUGIN="${LBX_PLUGIN:-$ROOT/plugins/least_conn.wasm}"
lbx_binary() {
	if [[ -n "${LBX_BIN:-}" ]]; then
		log "using LBX_BIN=$LBX_BIN (no cargo build)"
	else
		log "cargo build --release -p lbx"
		(cd "$ROOT" && cargo build --release -p lbx >&2)
		LBX_BIN="$(cargo_target_dir)/release/lbx"
	fi
	[[ -x "$LBX_BIN" ]] || die "lbx binary not found or not executable: $LBX_BIN"
	lbx_plugin
}

# lbx_plugin: make sure $PLUGIN exists; the default, plugins/least_conn.wasm (git-ignored), is
# built if missing: host/build.rs builds the plugins in the target directory and
# plugins/build.sh copies them here. A given LBX_PLUGIN is not built.
lbx_plugin() {
	if [[ ! -f "$PLUGIN" && -z "${LBX_PLUGIN:-}" ]]; then
		log "bash plugins/build.sh"
		(cd "$ROOT" && bash plugins/build.sh >&2)
	fi
	[[ -f "$PLUGIN" ]] || die "plugin not found: $PLUGIN"
}

# cargo_target_dir: the workspace's target directory as cargo resolves it (CARGO_TARGET_DIR,
# relative or absolute, or a config file's build.target-dir), not always $ROOT/target.
cargo_target_dir() {
	(cd "$ROOT" && cargo metadata --format-version 1 --no-deps) |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# sha256_short FILE: the first 12 hex digits of FILE's SHA-256, to tell binaries apart.
sha256_short() { sha256sum "$1" | cut -c1-12; }

# ----------------------------------------------------- process accounting --
# tree_pids PID: PID and all its descendants.
tree_pids() {
	local queue=("$1") pid
	while ((${#queue[@]})); do
		pid="${queue[0]}"
		queue=("${queue[@]:1}")
		echo "$pid"
		# shellcheck disable=SC2207
		queue+=($(pgrep -P "$pid" || true))
	done
}

# cpu_ticks PID: utime + stime (clock ticks, all threads, exited threads included) summed
# over PID's process tree.
cpu_ticks() {
	local p total=0 stat rest
	for p in $(tree_pids "$1"); do
		stat="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
		rest="${stat##*) }" # fields from 3 on; the command name may hold spaces
		# shellcheck disable=SC2086
		set -- $rest
		total=$((total + ${12} + ${13})) # fields 14 (utime) and 15 (stime)
	done
	echo "$total"
}

# rss_kb PID: VmRSS (KiB) summed over PID's process tree.
rss_kb() {
	local p total=0 v
	for p in $(tree_pids "$1"); do
		v="$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)" || continue
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# cpu_us_per_request TICKS REQUESTS: microseconds of CPU per request, one decimal.
cpu_us_per_request() {
	awk -v t="$1" -v n="$2" -v hz="$TICK" 'BEGIN {
		if (n ~ /^[0-9]+$/ && n > 0) printf "%.1f", t / hz * 1e6 / n; else printf "n/a" }'
}

# ratio A B [DECIMALS]: A/B with DECIMALS (2) decimals, or n/a.
ratio() {
	awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN {
		if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.*f", d, a / b; else printf "n/a" }'
}

# median_range FORMAT VALUE...: "median (min–max)" of the numeric VALUEs, each printed with
# the printf FORMAT; just the value when there is one, n/a when there is none. Values that are
# not numbers (n/a) are left out, and "[k of n]" says how many were used.
median_range() {
	local fmt="$1"
	shift
	printf '%s\n' "$@" | awk -v fmt="$fmt" '
	{ total++ }
	$1 ~ /^-?[0-9]+(\.[0-9]*)?$/ { v[++n] = $1 + 0 }
	END {
		if (n == 0) { printf "n/a"; exit }
		for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
		printf fmt, (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		if (n > 1) printf " (" fmt "–" fmt ")", v[1], v[n]
		if (n < total) printf " [%d of %d]", n, total
	}'
}

# sum_values VALUE...: the sum of the numeric VALUEs, n/a when there is none.
sum_values() {
	printf '%s\n' "$@" | awk '$1 ~ /^[0-9]+$/ { s += $1; n++ } END { if (n) printf "%d", s; else printf "n/a" }'
}

# ---------------------------------------------------------------- clients --
# run_client CPUS SECONDS OUT CMD...: run a load generator pinned to CPUS, output to OUT,
# killed after SECONDS + 30. It runs in the background and is waited for because bash only
# runs a trap once a foreground command is over; `wait` returns at once on INT/TERM, so
# Ctrl-C stops the benchmark immediately.
run_client() {
	local cpus="$1" secs="$2" out="$3" rc=0
	shift 3
	pin "$cpus"
	timeout "$((secs + 30))" "${PIN[@]}" "$@" >"$out" 2>&1 &
	CLIENT_PID=$!
	wait "$CLIENT_PID" || rc=$?
	CLIENT_PID=
	if ((rc)); then
		tail -n 5 "$out" >&2 || true
		die "$1 failed (exit $rc)"
	fi
}

# parse_wrk FILE: print "requests req/s p50_ms p99_ms errors" (n/a when missing); errors are
# socket errors (connect, read, write, timeout) plus non-2xx/3xx responses.
parse_wrk() {
	awk '
	function ms(v,   n, u) {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "us") return n / 1000
		if (u == "ms") return n
		if (u == "s")  return n * 1000
		if (u == "m")  return n * 60000
		return -1
	}
	/^[ \t]+50%/ { p50 = ms($2) }
	/^[ \t]+99%/ { p99 = ms($2) }
	/ requests in / { reqs = $1 }
	/^Requests\/sec:/ { rps = $2 }
	/Socket errors:/ {
		# "Socket errors: connect 0, read 0, write 0, timeout 0"
		for (i = 3; i <= NF; i += 2) { v = $(i + 1); sub(/,/, "", v); err += v }
	}
	/Non-2xx or 3xx responses:/ { err += $NF }
	END {
		printf "%s %s %s %s %s\n", (reqs == "" ? "n/a" : reqs), (rps == "" ? "n/a" : sprintf("%.0f", rps)),
			(p50 == "" ? "n/a" : sprintf("%.2f", p50)), (p99 == "" ? "n/a" : sprintf("%.2f", p99)),
			(rps == "" ? "n/a" : err + 0)
	}' "$1"
}

# parse_h2load FILE [LATENCY_LOG]: the same fields from h2load's output; p50/p99 come from
# its --log-file (third column: microseconds to the end of the response), n/a without one.
# errors: h2load's failed requests.
parse_h2load() {
	local out="$1" lat="${2:-}" p50=n/a p99=n/a
	if [[ -n "$lat" && -s "$lat" ]]; then
		read -r p50 p99 < <(cut -f3 "$lat" | sort -n | awk '{ v[NR] = $1 } END {
			if (NR == 0) { print "n/a n/a"; exit }
			i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
			i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
			printf "%.2f %.2f\n", v[i50] / 1000, v[i99] / 1000 }')
	fi
	awk -v p50="$p50" -v p99="$p99" '
	/^finished in/ { rps = $4 }
	/^requests:/ {
		# "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
		# ("failed" counts the errored ones and non-2xx/3xx answers)
		done_ = $6; err = $10
	}
	END {
		printf "%s %s %s %s %s\n", (done_ == "" ? "n/a" : done_), (rps == "" ? "n/a" : sprintf("%.0f", rps)),
			p50, p99, (done_ == "" ? "n/a" : err + 0)
	}' "$out"
}

# ------------------------------------------------------------ server bits --
# make_cert DIR: DIR/cert.pem, DIR/key.pem (ECDSA P-256, CN bench.test, SAN bench.test and
# 127.0.0.1 (Caddy picks a certificate by the address when the client sends no SNI), two days) and
# DIR/cert+key.pem (both, for HAProxy).
make_cert() {
	local dir="$1"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj /CN=bench.test -addext subjectAltName=DNS:bench.test,IP:127.0.0.1 \
		-keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null || die "openssl could not make a certificate"
	cat "$dir/cert.pem" "$dir/key.pem" >"$dir/cert+key.pem"
}

# nginx_head DIR WORKERS [WORKER_CONNECTIONS]: the top of an nginx.conf run from DIR in the
# foreground, with its pid file, error log and temp files inside DIR (the Debian defaults under
# /var/lib/nginx and /run are not used). The temp paths go inside http{}: nginx_temp_paths.
nginx_head() {
	local dir="$1" workers="$2" conns="${3:-4096}" nofile
	nofile="$(ulimit -Hn)"
	[[ "$nofile" == unlimited || "$nofile" -gt $((conns * 2 + 100)) ]] && nofile=$((conns * 2 + 100))
	# As root, workers would switch to `nobody`, which cannot enter the 0700 temp dir.
	[[ "$(id -u)" -ne 0 ]] || echo "user root root;"
	cat <<EOF
worker_processes $workers;
worker_rlimit_nofile $nofile;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $conns; }
EOF
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
