//! The Go project: `router.go` on a copy of the Go SDK (the module `lbx.dev/router` in `sdk/`,
//! wired in by a `replace` line, with the contract in `wit/`), a least-in-flight router to
//! start from, its `go test` tests on the SDK's test kit, `build.sh` (Go's wasip1 library build,
//! then `lbx plugin component`, which embeds the contract and adds the WASI adapter) and a
//! README. Nothing is fetched from the Go module proxy.

use super::{ProjectFile, contract, sdk_files};

/// Every file of a Go project named `name`.
pub fn files(name: &str) -> Vec<ProjectFile> {
    let mut files = vec![
        ("go.mod".to_string(), GO_MOD.replace("{name}", name)),
        ("main.go".into(), MAIN_GO.into()),
        ("router.go".into(), ROUTER_GO.replace("{name}", name)),
        ("router_test.go".into(), ROUTER_TEST_GO.into()),
        ("build.sh".into(), BUILD_SH.replace("{name}", name)),
        ("README.md".into(), README.replace("{name}", name)),
        (".gitignore".into(), "/*.wasm\n".into()),
        contract(),
    ];
    for (path, contents) in sdk_files::GO_SDK {
        files.push((format!("sdk/{path}"), contents.to_string()));
    }
    files
}

const GO_MOD: &str = r#"module {name}

go 1.24

require lbx.dev/router v0.0.0

// The SDK is the copy in sdk/: nothing is fetched from the Go module proxy.
replace lbx.dev/router => ./sdk
"#;

const MAIN_GO: &str = r#"package main

import "lbx.dev/router/lbxrouter"

// The plugin's Router, made once per plugin instance when lbx calls init.
func init() {
	lbxrouter.Export(func() lbxrouter.Router { return &Router{} })
}

// main is never called: the plugin is a library (a wasip1 reactor) whose exports lbx calls.
func main() {}
"#;

const ROUTER_GO: &str = r#"// {name}: an lbx routing plugin. As created, it sends each request to the healthy backend
// with the fewest requests in flight, and a retry to one that has not failed the request yet;
// with no healthy backend it has no opinion and lbx's own choice decides. Change Choose.
//
// Test: go test ./... Build: bash build.sh. Check: lbx check {name}.wasm.
package main

import "lbx.dev/router/lbxrouter"

// Router keeps the plugin's state between decisions. Base supplies Init (which accepts only an
// empty configuration), BackendsChanged and OnOutcome; write your own to take a configuration.
type Router struct {
	lbxrouter.Base
	candidates []int // reused by every decision, so deciding allocates nothing
}

// Choose decides one request.
func (r *Router) Choose(_ lbxrouter.Request, backends lbxrouter.Backends, retry lbxrouter.RetryContext) lbxrouter.Decision {
	r.candidates = backends.Candidates(retry, r.candidates[:0])
	best, ok := backends.LeastInFlight(r.candidates)
	if !ok {
		return lbxrouter.NoOpinion()
	}
	return lbxrouter.Pick(best)
}
"#;

const ROUTER_TEST_GO: &str = r#"package main

// The router's logic on the SDK's native test kit: go test ./... (no Wasm build).

import (
	"testing"

	t "lbx.dev/router/lbxrouter"
)

func started(tb testing.TB) *Router {
	router := &Router{}
	if err := t.Start(router, "{}", t.Labeled("a"), t.Labeled("b"), t.Labeled("c")); err != nil {
		tb.Fatal(err)
	}
	return router
}

func picked(tb testing.TB, d t.Decision) int {
	tb.Helper()
	i, ok := d.Picked()
	if !ok {
		tb.Fatalf("expected a pick, got %+v", d)
	}
	return i
}

func TestTheLeastLoadedBackendIsPicked(tt *testing.T) {
	if got := picked(tt, started(tt).Choose(t.Get("/"), t.Loads(5, 2, 9), t.FirstAttempt())); got != 1 {
		tt.Fatalf("picked %d, want 1", got)
	}
}

func TestADownBackendIsNeverPicked(tt *testing.T) {
	stats := t.BackendsOf(t.Stats{Healthy: false}, t.Stats{Healthy: true, InFlight: 7})
	if got := picked(tt, started(tt).Choose(t.Get("/"), stats, t.FirstAttempt())); got != 1 {
		tt.Fatalf("picked %d, want 1", got)
	}
}

func TestARetryGoesToABackendThatHasNotFailedIt(tt *testing.T) {
	if got := picked(tt, started(tt).Choose(t.Get("/"), t.Loads(0, 3), t.Retry(0))); got != 1 {
		tt.Fatalf("picked %d, want 1", got)
	}
}

func TestAConfigIsRefusedSinceNoneIsTaken(tt *testing.T) {
	if err := t.Start(&Router{}, `{"weights": [1, 2]}`); err == nil {
		tt.Fatal("a configuration was accepted")
	}
}
"#;

const BUILD_SH: &str = r#"#!/usr/bin/env bash
# Build {name}.wasm, the component lbx loads: Go's wasip1 library module (-buildmode=c-shared:
# exports lbx calls many times, no main), then `lbx plugin component`, which gives the WASI
# adapter the memory the SDK reserves for it, embeds the contract and wraps the module.
#
# Run: bash build.sh   (needs lbx and Go 1.24 or later)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lbx="${LBX:-lbx}"
command -v "$lbx" >/dev/null 2>&1 || { echo "lbx not found: put it on PATH or set LBX=/path/to/lbx" >&2; exit 1; }
go_bin="${GO:-go}"
command -v "$go_bin" >/dev/null 2>&1 || { echo "go not found: install Go 1.24 or later (or set GO=/path/to/go)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# -s -w: no symbol table or DWARF (smaller, and quicker for lbx to compile).
(cd "$here" && GOOS=wasip1 GOARCH=wasm "$go_bin" build -buildmode=c-shared -ldflags='-s -w' -o "$work/core.wasm" .)
"$lbx" plugin component --lang go --wit "$here/wit" --go-version "$("$go_bin" env GOVERSION)" \
	"$work/core.wasm" -o "$here/{name}.wasm"
echo "built {name}.wasm ($(wc -c <"$here/{name}.wasm") bytes)"
"#;

const README: &str = r#"# {name}

An lbx routing plugin in Go, created by `lbx plugin new --lang go {name}`.

```sh
go test ./...           # the logic, natively, on the SDK's test kit (router_test.go)
bash build.sh           # {name}.wasm (Go 1.24+ for wasip1, then lbx wraps it)
lbx check {name}.wasm   # loads it as lbx would: its decisions, their µs, its memory
```

`build.sh` calls `lbx` (on PATH, or set `LBX=/path/to/lbx`) to turn Go's module into a
component. Then run it: `lbx run --plugin {name}.wasm --backend http://127.0.0.1:9001 --backend
…`, or set `[plugin] path` in lbx.toml; replacing the file swaps it in without a restart.

`router.go` is the plugin and `main.go` registers it. `sdk/` is a copy of lbx's Go SDK (the
module `lbx.dev/router`, wired in by go.mod's `replace`) and `wit/router.wit` the contract it
speaks (`lbx:router@0.2.0`). Go's collector stops the world on Wasm: a router that allocates
little per decision (reuse slices, as `Router.candidates` does) keeps its decisions quick. The
guide is docs/plugins.md in lbx's repository.
"#;
