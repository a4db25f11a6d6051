#!/usr/bin/env bash
# Builds the bundled routing plugins as WebAssembly components.
#
# Run from anywhere:  bash plugins/build.sh
#
# Uses the workspace's `plugin` profile (opt-level "s", LTO, strip, panic=abort) and the
# wasm32-wasip2 target, which makes cargo emit components directly. Copies each component to
# plugins/<name>.wasm (git-ignored) and prints its size; fails if one exceeds 100 KB.
set -euo pipefail

cd "$(dirname "$0")/.."

PLUGINS=(round_robin least_conn random weighted_round_robin p2c_ewma consistent_hash sticky_cookie header_router)
MAX_BYTES=$((100 * 1024))

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
    printf '%-28s %7d bytes\n' "$dst" "$bytes"
    if ((bytes > MAX_BYTES)); then
        echo "error: $dst is larger than $MAX_BYTES bytes" >&2
        status=1
    fi
done
exit "$status"
