#!/usr/bin/env bash
# The Go header router's tests on the SDK's native test kit (go test, no Wasm build), and the
# SDK's own.
#
# Run: bash examples/go/header_router/test.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
# shellcheck source=../../../sdk/go/toolchain.sh
source "$root/sdk/go/toolchain.sh"
go_bin="$(lbx_go)"
(cd "$root/sdk/go" && "$go_bin" vet ./... && "$go_bin" test ./...)
(cd "$here" && "$go_bin" vet ./... && "$go_bin" test -count=1 ./...)
