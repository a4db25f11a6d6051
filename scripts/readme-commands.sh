#!/usr/bin/env bash
# Runs the commands of README.md's "Running lbx" block as written, in order, from the repository
# root, and fails naming the first one that does not work: the README cannot drift from lbx.
#
# The block is read from README.md itself, so an edit there is what gets run. It is a terminal
# session written down; this script plays it the way a reader would:
#   - a line ending in `&` starts in the background (the two `lbx backend`s), and the script
#     waits until it listens;
#   - each `lbx run` serves in the foreground until Ctrl-C in the README: here it starts in the
#     background, must answer /ready on its admin port and serve a request through lbx, and is
#     stopped (SIGTERM) when the next `lbx run` starts, or at the end;
#   - `curl` must be answered by one of the backends, as its comment says;
#   - everything else (the builds, `export`, `lbx reload`, `lbx check`, `lbx validate`) must
#     exit 0, an `lbx` command within 120 s.
# The README's fixed ports (8080, 9001, 9002, 9901) must be free. Every process started here is
# stopped on exit. The release build takes a few minutes the first time.
#
# Run: bash scripts/readme-commands.sh
set -euo pipefail
cd "$(dirname "$0")/.."

logs="$(mktemp -d)"
pids=()
server=""

stop() { # pid: SIGTERM, then wait up to 40 s for the drain to end
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 400); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "readme-commands: process $pid did not stop after SIGTERM; killing it" >&2
	kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
	local status=$?
	for pid in ${server:+"$server"} "${pids[@]}"; do
		stop "$pid"
	done
	if ((status != 0)); then
		for log in "$logs"/*.log; do
			[[ -e $log ]] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
		done
	fi
	rm -rf "$logs"
}
trap cleanup EXIT

fail() {
	echo "readme-commands: $*" >&2
	exit 1
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { # what, seconds, command...: retry the command until it succeeds
	local what=$1 seconds=$2
	shift 2
	for _ in $(seq $((seconds * 10))); do
		"$@" && return 0
		sleep 0.1
	done
	fail "$what"
}

for port in 8080 9001 9002 9901; do
	listening "$port" && fail "127.0.0.1:$port is in use; the README's commands need it free"
done

# The ```sh block after "## Running lbx"; continuation lines joined, comments and blank lines
# dropped.
block=$(awk '/^## Running lbx/ { section = 1 } section && /^```sh/ { inside = 1; next }
	inside && /^```/ { exit } inside' README.md |
	sed -e ':join' -e '/\\$/{N;s/\\\n[[:space:]]*/ /;b join' -e '}' |
	sed -e 's/[[:space:]]*#.*$//' -e '/^[[:space:]]*$/d')
[[ -n $block ]] || fail "no \`\`\`sh block found under \"## Running lbx\" in README.md"

n=0
while IFS= read -r command <&3; do
	n=$((n + 1))
	echo "readme-commands: \$ $command"
	case "$command" in
	*"&")
		log="$logs/$n-background.log"
		eval "${command%&} </dev/null >\"$log\" 2>&1 &"
		pids+=("$!")
		port=$(grep -o -- '--listen 127.0.0.1:[0-9]*' <<<"$command" | grep -o '[0-9]*$' || true)
		[[ -n $port ]] && wait_for "\`$command\` does not listen on $port" 30 listening "$port"
		;;
	"lbx run "*)
		[[ -n $server ]] && { stop "$server"; server=""; }
		log="$logs/$n-run.log"
		eval "$command </dev/null >\"$log\" 2>&1 &"
		server=$!
		ready() {
			kill -0 "$server" 2>/dev/null || fail "\`$command\` exited: $(tail -n 5 "$log")"
			curl -fsS -o /dev/null http://127.0.0.1:9901/ready 2>/dev/null
		}
		wait_for "\`$command\` not ready within 60 s" 60 ready
		answer=$(curl -fsS http://127.0.0.1:8080/) || fail "\`$command\`: a request through it failed"
		[[ $answer =~ ^(one|two)$ ]] || fail "\`$command\`: answered \"$answer\", not a backend's name"
		;;
	"curl "*)
		answer=$(eval "$command" 2>"$logs/$n-curl.log") || fail "\`$command\` failed"
		echo "$answer"
		[[ $answer =~ ^(one|two)$ ]] || fail "\`$command\`: answered \"$answer\", not \"one\" or \"two\""
		;;
	"lbx "*)
		# A command the README shows as finishing must finish: one that serves instead (a
		# missing `&`) would hang CI.
		eval "timeout 120 $command" </dev/null || fail "\`$command\` failed or did not finish in 120 s"
		;;
	*)
		eval "$command" </dev/null || fail "\`$command\` failed"
		;;
	esac
done 3<<<"$block"

[[ -n $server ]] || fail "the block has no \`lbx run\`"
echo "readme-commands: all $n commands of README.md's \"Running lbx\" work as written"
