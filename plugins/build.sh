#!/usr/bin/env bash
# Builds the bundled routing plugins as WebAssembly components.
#
# Run from anywhere:  bash plugins/build.sh
#
# Uses the workspace's `plugin` profile (opt-level 3, LTO, strip, panic=abort) and the
# wasm32-wasip2 target, which makes cargo emit components directly. Copies each component to
# plugins/<name>.wasm (git-ignored) and prints its size; fails if one exceeds its size budget (below).
set -euo pipefail

cd "$(dirname "$0")/.."

PLUGINS=(round_robin least_conn random weighted_round_robin p2c_ewma consistent_hash sticky_cookie header_router llm_router)
# Size budgets: the plugins without configuration stay under 100 KB; those that parse a
# configuration carry serde_json (~80 KB) and stay under 256 KB; llm_router, which also carries
# its own streaming JSON reader and the prefix index, under 320 KB.
max_bytes() {
    case "$1" in
    round_robin | least_conn | random) echo $((100 * 1024)) ;;
    llm_router) echo $((320 * 1024)) ;;
    *) echo $((256 * 1024)) ;;
    esac
}

# The same directory host/build.rs builds plugins in, so the two never compile them twice.
target_dir="${CARGO_TARGET_DIR:-target}/wasm-plugins"
CARGO_TARGET_DIR="$target_dir" cargo build --profile plugin --target wasm32-wasip2 \
    $(printf -- '-p %s ' "${PLUGINS[@]}")

status=0
for name in "${PLUGINS[@]}"; do
    src="$target_dir/wasm32-wasip2/plugin/$name.wasm"
    dst="plugins/$name.wasm"
    cp "$src" "$dst"
    bytes=$(wc -c <"$dst")
    printf '%-36s %7d bytes\n' "$dst" "$bytes"
    if ((bytes > $(max_bytes "$name"))); then
        echo "error: $dst is larger than $(max_bytes "$name") bytes" >&2
        status=1
    fi
done
exit "$status"
