// Package lbxrouter is the Go SDK for lbx routing plugins (contract lbx:router@0.2.0,
// wit/router.wit): the Router interface a plugin implements, what it is given (Request,
// Backends, RetryContext, BackendInfo, Outcome) and what it answers (Decision).
//
// This file and backends.go, decision.go and testkit.go build for any target, so a plugin's
// logic is tested natively with `go test`; the Wasm glue (export_wasip1.go, abi_wasip1.go,
// request_wasip1.go) builds only for GOOS=wasip1.
package lbxrouter

// Router is what a plugin implements: one value per plugin instance, kept between decisions.
// Embed Base to take its defaults for the methods a router does not need.
type Router interface {
	// Init receives `[plugin.config]` as JSON text; an error refuses the configuration and
	// lbx reports its message. It returns the features the router asks for.
	Init(config string) (Features, error)
	// BackendsChanged gives the backends' identities (index i in Backends is backends[i]) and
	// the names of the signals lbx scrapes, in the order Backends.Signal reads them.
	BackendsChanged(backends []BackendInfo, signals []string)
	// Choose decides one request. backends and retry are valid only during the call.
	Choose(req Request, backends Backends, retry RetryContext) Decision
	// OnOutcome reports how an attempt ended; called only if Init asked for FeatureOutcomes.
	OnOutcome(outcome Outcome)
}

var newRouter func() Router

// Export registers the plugin's Router: call it from the main package's init. lbx makes the
// instance's Router with factory when it calls init.
func Export(factory func() Router) { newRouter = factory }

// Features a router asks lbx for at Init.
type Features uint8

// FeatureOutcomes asks lbx to call OnOutcome after every attempt.
const FeatureOutcomes Features = 1

// Base gives a Router's defaults: a configuration that must be empty, and no interest in
// backend changes or outcomes.
type Base struct{}

// Init accepts only an empty configuration (`{}`, or none).
func (Base) Init(config string) (Features, error) {
	return 0, RequireEmptyConfig(config)
}

// BackendsChanged ignores the change.
func (Base) BackendsChanged([]BackendInfo, []string) {}

// OnOutcome ignores the outcome.
func (Base) OnOutcome(Outcome) {}

// Request is the request being routed. Strings are fetched from lbx when asked for ("numbers
// per request, strings on demand"), so a router that never reads a header pays nothing for it.
type Request interface {
	Method() string
	Path() string
	Query() (string, bool)
	Authority() (string, bool)
	// Header returns the first value of a header; name is matched without regard to case.
	Header(name string) (string, bool)
	Cookie(name string) (string, bool)
	ClientIP() string
	ClientPort() uint16
	// BodyPrefix is the start of the body lbx read ahead (`[plugin] body_prefix`), if any.
	BodyPrefix() ([]byte, bool)
}

// RetryContext tells whether this decision is a retry and which backends failed the request.
type RetryContext struct {
	Attempt uint32
	Tried   []uint32
}

// HasTried reports whether backend index i already failed this request.
func (r RetryContext) HasTried(i int) bool {
	for _, t := range r.Tried {
		if int(t) == i {
			return true
		}
	}
	return false
}

// BackendInfo is one backend's identity, as configured.
type BackendInfo struct {
	ID      string
	Address string
	Weight  uint32
	Labels  map[string]string
}

// Matches reports whether every label of selector is set on the backend to the same value.
func (b BackendInfo) Matches(selector map[string]string) bool {
	for k, v := range selector {
		if b.Labels[k] != v {
			return false
		}
	}
	return true
}

// Fault says whose fault an attempt's failure was.
type Fault uint8

const (
	FaultClient Fault = iota
	FaultBackend
	FaultLbx
)

// Outcome is how one attempt ended. Optional fields have a Has* flag.
type Outcome struct {
	Backend      uint32
	Status       uint16
	HasStatus    bool
	Fault        Fault
	HasFault     bool
	TTFBUs       uint64
	HasTTFB      bool
	FirstByteUs  uint64
	HasFirstByte bool
	TotalUs      uint64
	BytesUp      uint64
	BytesDown    uint64
	Attempt      uint32
	Tag          uint64
}
