package main

// The router's logic on the SDK's native test kit: `go test ./...`, no Wasm build.

import (
	"strings"
	"testing"

	t "lbx.dev/router/lbxrouter"
)

const rules = `{"default": {"version": "stable"}, "rules": [
  {"path_prefix": "/api", "group": {"pool": "api"}},
  {"header": "X-Canary", "equals": "1", "group": {"version": "canary"}},
  {"cookie": "beta", "equals": "yes", "group": {"version": "canary"}}]}`

// stable-1, stable-2, canary, api: the backends of the integration test, in its order.
func started(tb testing.TB) *HeaderRouter {
	router := &HeaderRouter{}
	err := t.Start(router, rules,
		t.Labeled("stable-1", "version", "stable"), t.Labeled("stable-2", "version", "stable"),
		t.Labeled("canary", "version", "canary"), t.Labeled("api", "pool", "api"))
	if err != nil {
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

func TestAPIPathsGoToTheAPIPool(tt *testing.T) {
	if got := picked(tt, started(tt).Choose(t.Get("/api/users?id=7"), t.Loads(0, 0, 0, 9), t.FirstAttempt())); got != 3 {
		tt.Fatalf("picked %d, want the api backend 3", got)
	}
}

func TestTheCanaryHeaderGoesToTheCanary(tt *testing.T) {
	req := t.Get("/").WithHeader("x-canary", "1")
	if got := picked(tt, started(tt).Choose(req, t.Loads(0, 0, 5, 0), t.FirstAttempt())); got != 2 {
		tt.Fatalf("picked %d, want the canary 2", got)
	}
}

func TestTheBetaCookieGoesToTheCanary(tt *testing.T) {
	req := t.Get("/home").WithCookie("beta", "yes")
	if got := picked(tt, started(tt).Choose(req, t.Loads(0, 0, 5, 0), t.FirstAttempt())); got != 2 {
		tt.Fatalf("picked %d, want the canary 2", got)
	}
	req = t.Get("/home").WithCookie("beta", "no")
	if got := picked(tt, started(tt).Choose(req, t.Loads(0, 0, 0, 0), t.FirstAttempt())); got == 2 {
		tt.Fatal("beta=no must not reach the canary")
	}
}

func TestOtherRequestsGoToTheLeastLoadedStableBackend(tt *testing.T) {
	if got := picked(tt, started(tt).Choose(t.Get("/"), t.Loads(4, 1, 0, 0), t.FirstAttempt())); got != 1 {
		tt.Fatalf("picked %d, want stable-2 (1)", got)
	}
}

func TestARetryAvoidsTheBackendThatFailed(tt *testing.T) {
	if got := picked(tt, started(tt).Choose(t.Get("/"), t.Loads(0, 9, 0, 0), t.Retry(0))); got != 1 {
		tt.Fatalf("picked %d, want stable-2 (1)", got)
	}
}

func TestAGroupWithNobodyUsableFallsBackToTheDefault(tt *testing.T) {
	backends := t.BackendsOf(t.Stats{Healthy: true}, t.Stats{Healthy: true, InFlight: 3},
		t.Stats{Healthy: true}, t.Stats{Healthy: false})
	if got := picked(tt, started(tt).Choose(t.Get("/api"), backends, t.FirstAttempt())); got != 0 {
		tt.Fatalf("picked %d, want stable-1 (0)", got)
	}
}

func TestABadConfigurationIsRefusedNamingTheRule(tt *testing.T) {
	err := t.Start(&HeaderRouter{}, `{"rules": [{"path_prefix": "/a", "header": "x", "group": {"a": "b"}}]}`)
	if err == nil || !strings.Contains(err.Error(), "rules[0] needs exactly one") {
		tt.Fatalf("got %v", err)
	}
	err = t.Start(&HeaderRouter{}, `{"rulez": []}`)
	if err == nil || !strings.Contains(err.Error(), "rulez") {
		tt.Fatalf("an unknown key must be named, got %v", err)
	}
}
