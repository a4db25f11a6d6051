#!/usr/bin/env bash
# Builds lbx (release) and its least_conn.wasm as they were at a git revision, for an A/B in
# bench/compare.sh (LBX_BASE_BIN), without touching the working tree or its target directory:
# the revision is checked out in a temporary `git worktree` (detached, removed afterwards) and
# built there with a CARGO_TARGET_DIR of its own.
#
# Run (from anywhere in the repository):
#   bash bench/build_rev.sh REV                 e.g. bash bench/build_rev.sh 31663ba
#   base="$(bash bench/build_rev.sh 31663ba)" && LBX_BASE_BIN="$base" PROXIES="lbx lbx_base" \
#       SCENARIOS=http1 ROUNDS=5 bash bench/compare.sh
#
# Prints the binary's path on stdout (cargo's output goes to stderr). It and the revision's
# plugin are kept, per commit, as
#   $REV_TARGET_DIR/revs/<full commit>/lbx
#   $REV_TARGET_DIR/revs/<full commit>/least_conn.wasm   (for LBX_BASE_PLUGIN)
#   $REV_TARGET_DIR/revs/<full commit>/commit.txt        (`git log -1 --oneline`; compare.sh
#                                                         names the base by it)
# and a commit found there is not built again.
#
#   REV_TARGET_DIR=dir   cargo's target directory for these builds, kept between runs so that
#                        a later revision with the same dependencies rebuilds little
#                        [${CARGO_TARGET_DIR:-<repository>/target}/rev-builds]
#
# Why a target directory of its own: sharing the working tree's would put the revision's
# plugins where host/build.rs left the current ones (target/wasm-plugins), so tests and the
# current binary could pick up old plugins, and `target/release/lbx` would be replaced.
#
# Cost on the project's 2-core machine: the first revision is a full release build (wasmtime
# and every dependency): 15 min wall-clock, 13 min of CPU (measured 2026-12-02 with other
# builds running), ~2 GiB in REV_TARGET_DIR (1.8 GiB release/, 160 MiB wasm-plugins/), plus
# the kept copy of the binary, ~160 MB per revision (line-tables debug info). A later revision
# with the same dependencies recompiles only the workspace crates (lbx and the plugins).
# Remove REV_TARGET_DIR to get the space back.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 && -n "$1" ]] || die "usage: bash bench/build_rev.sh REV (a commit, tag or branch)"
REV="$1"
COMMIT="$(git -C "$ROOT" rev-parse --verify --quiet "$REV^{commit}")" ||
	die "'$REV' is not a commit of the repository at $ROOT"

if [[ -z "${REV_TARGET_DIR:-}" ]]; then REV_TARGET_DIR="$(cargo_target_dir)/rev-builds"; fi
mkdir -p "$REV_TARGET_DIR"
REV_TARGET_DIR="$(cd "$REV_TARGET_DIR" && pwd)"
OUT="$REV_TARGET_DIR/revs/$COMMIT"

if [[ -x "$OUT/lbx" && -f "$OUT/least_conn.wasm" && -f "$OUT/commit.txt" ]]; then
	log "already built: $(cat "$OUT/commit.txt")"
	echo "$OUT/lbx"
	exit 0
fi

# The checkout lives in a temp dir; the EXIT trap removes it and its worktree entry.
WORKTREE_PARENT="$(mktemp -d "${TMPDIR:-/tmp}/lbx-rev.XXXXXX")"
WORKTREE="$WORKTREE_PARENT/src"
remove_worktree() {
	git -C "$ROOT" worktree remove --force "$WORKTREE" 2>/dev/null || true
	rm -rf "$WORKTREE_PARENT"
	git -C "$ROOT" worktree prune 2>/dev/null || true
}
trap remove_worktree EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "checking out $(git -C "$ROOT" log -1 --format='%h %s' "$COMMIT" | cut -c1-100) in $WORKTREE"
git -C "$ROOT" worktree add --detach --quiet "$WORKTREE" "$COMMIT" >&2

log "cargo build --release -p lbx (CARGO_TARGET_DIR=$REV_TARGET_DIR)"
(cd "$WORKTREE" && CARGO_TARGET_DIR="$REV_TARGET_DIR" cargo build --release -p lbx >&2)
# plugins/build.sh builds in the same wasm-plugins directory host/build.rs just used (nothing
# is compiled again) and copies the components to the checkout's plugins/.
[[ -f "$WORKTREE/plugins/build.sh" ]] || die "$REV has no plugins/build.sh to build least_conn.wasm with"
log "bash plugins/build.sh"
(cd "$WORKTREE" && CARGO_TARGET_DIR="$REV_TARGET_DIR" bash plugins/build.sh >&2)

mkdir -p "$OUT"
cp "$REV_TARGET_DIR/release/lbx" "$OUT/lbx"
cp "$WORKTREE/plugins/least_conn.wasm" "$OUT/least_conn.wasm"
git -C "$ROOT" log -1 --format='%h %s' "$COMMIT" >"$OUT/commit.txt"
log "built $(cut -c1-100 "$OUT/commit.txt")"
echo "$OUT/lbx"
