package lbxrouter

import (
	"math"
	"strings"
	"testing"
)

func TestCandidatesAreHealthyAndNotYetTried(t *testing.T) {
	backends := BackendsOf(Stats{Healthy: true}, Stats{Healthy: false}, Stats{Healthy: true}, Stats{Healthy: true})
	got := backends.Candidates(Retry(2), nil)
	if len(got) != 2 || got[0] != 0 || got[1] != 3 {
		t.Fatalf("candidates %v, want [0 3]", got)
	}
}

func TestLeastInFlightTakesTheFirstOnATie(t *testing.T) {
	best, ok := Loads(3, 1, 1).LeastInFlight([]int{0, 1, 2})
	if !ok || best != 1 {
		t.Fatalf("got %d %v, want 1", best, ok)
	}
	if _, ok := Loads(3).LeastInFlight(nil); ok {
		t.Fatal("no candidates must give no backend")
	}
}

func TestSignalsAreReadByNameAndAMissingValueIsAbsent(t *testing.T) {
	names := []string{"queue", "kv"}
	// Per backend: the scrape's age, then queue, then kv.
	signals := []float64{10, 4, 0.5, 20, math.NaN(), 0.9}
	backends := NewBackends(Loads(0, 0).stats, signals, true, names)
	if v, ok := backends.Signal(0, "kv"); !ok || v != 0.5 {
		t.Fatalf("backend 0 kv: %v %v", v, ok)
	}
	if _, ok := backends.Signal(1, "queue"); ok {
		t.Fatal("a NaN reading must read as missing")
	}
	if age, ok := backends.SignalAgeMs(1); !ok || age != 20 {
		t.Fatalf("backend 1 age: %v %v", age, ok)
	}
	if _, ok := backends.Signal(0, "unknown"); ok {
		t.Fatal("an unconfigured signal must read as missing")
	}
}

func TestAConfigWithAnUnknownKeyIsRefusedNamingIt(t *testing.T) {
	var c struct {
		Rules []string `json:"rules"`
	}
	if err := ParseConfig(`{"rulez": []}`, &c); err == nil || !strings.Contains(err.Error(), "rulez") {
		t.Fatalf("got %v", err)
	}
	if err := RequireEmptyConfig(`{"a": 1}`); err == nil {
		t.Fatal("a config must be refused by a router that takes none")
	}
}

func TestDecisionsSayWhatTheyAre(t *testing.T) {
	if i, ok := Pick(2).Picked(); !ok || i != 2 {
		t.Fatal("pick 2")
	}
	if r, ok := Reject(429).Rejected(); !ok || r.Status != 429 {
		t.Fatal("reject 429")
	}
	if !NoOpinion().IsNoOpinion() {
		t.Fatal("no opinion")
	}
}
