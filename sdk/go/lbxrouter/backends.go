package lbxrouter

import "math"

// Numbers per backend in the flat stats list lbx sends with every decision, in this order
// (wit/router.wit, router.choose): healthy, weight, in-flight, ewma-latency-us, recent-failures.
const statsFields = 5

const (
	statHealthy = iota
	statWeight
	statInFlight
	statEwmaUs
	statFailures
)

// Backends is the host's live numbers for one request, read in place by backend index: lbx
// sends them as one flat list and nothing is copied or built per backend.
type Backends struct {
	stats       []uint32
	signals     []float64
	hasSignals  bool
	signalNames []string
}

// NewBackends views a flat stats list (5 numbers per backend) and, when lbx scrapes signals,
// their readings (per backend: the age in ms, then one value per name in signalNames).
func NewBackends(stats []uint32, signals []float64, hasSignals bool, signalNames []string) Backends {
	return Backends{stats: stats, signals: signals, hasSignals: hasSignals, signalNames: signalNames}
}

// Len is the number of backends.
func (b Backends) Len() int { return len(b.stats) / statsFields }

func (b Backends) stat(i, field int) uint32 { return b.stats[i*statsFields+field] }

// Healthy reports whether lbx considers backend i usable now.
func (b Backends) Healthy(i int) bool { return b.stat(i, statHealthy) != 0 }

// Weight is backend i's configured weight.
func (b Backends) Weight(i int) uint32 { return b.stat(i, statWeight) }

// InFlight is the number of requests lbx is serving on backend i now.
func (b Backends) InFlight(i int) uint32 { return b.stat(i, statInFlight) }

// EwmaLatencyUs is backend i's moving average time to response headers (0 before any).
func (b Backends) EwmaLatencyUs(i int) uint32 { return b.stat(i, statEwmaUs) }

// RecentFailures counts backend i's recent failures; it decays to 0 on success.
func (b Backends) RecentFailures(i int) uint32 { return b.stat(i, statFailures) }

// Signal is the latest scraped value of the named signal on backend i; false when lbx does not
// scrape it or has no reading (the host sends NaN for a missing value). Per backend the host
// sends the last scrape's age first, then one value per name.
func (b Backends) Signal(i int, name string) (float64, bool) {
	for k, n := range b.signalNames {
		if n == name {
			return b.signalAt(i, 1+k)
		}
	}
	return 0, false
}

// SignalAgeMs is the age in milliseconds of backend i's last successful scrape.
func (b Backends) SignalAgeMs(i int) (float64, bool) { return b.signalAt(i, 0) }

func (b Backends) signalAt(i, slot int) (float64, bool) {
	at := i*(len(b.signalNames)+1) + slot
	if !b.hasSignals || at >= len(b.signals) || math.IsNaN(b.signals[at]) {
		return 0, false
	}
	return b.signals[at], true
}

// Candidates appends to dst the healthy backends this request has not failed on yet, in index
// order, and returns it: pass a reused slice to decide without allocating.
func (b Backends) Candidates(retry RetryContext, dst []int) []int {
	for i := 0; i < b.Len(); i++ {
		if b.Healthy(i) && !retry.HasTried(i) {
			dst = append(dst, i)
		}
	}
	return dst
}

// LeastInFlight is the index among indexes with the fewest requests in flight (the first on a
// tie), or false when indexes is empty.
func (b Backends) LeastInFlight(indexes []int) (int, bool) {
	best, found := 0, false
	for _, i := range indexes {
		if !found || b.InFlight(i) < b.InFlight(best) {
			best, found = i, true
		}
	}
	return best, found
}
