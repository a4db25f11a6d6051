package lbxrouter

import "strings"

// The native test kit: a plugin's logic run under `go test`, no Wasm build. FakeRequest stands
// in for lbx's request and the helpers build the numbers lbx would send.

// FakeRequest is a Request made in a test.
type FakeRequest struct {
	MethodValue    string
	PathValue      string
	QueryValue     *string
	AuthorityValue *string
	Headers        map[string]string
	Cookies        map[string]string
	ClientIPValue  string
	Port           uint16
	Body           []byte
}

// Get is a GET of target (a path, optionally with `?query`) from 127.0.0.1.
func Get(target string) *FakeRequest { return newFake("GET", target) }

// Post is a POST of target with body as the body prefix lbx read ahead.
func Post(target string, body []byte) *FakeRequest {
	r := newFake("POST", target)
	r.Body = body
	return r
}

func newFake(method, target string) *FakeRequest {
	r := &FakeRequest{MethodValue: method, PathValue: target, ClientIPValue: "127.0.0.1", Port: 40000,
		Headers: map[string]string{}, Cookies: map[string]string{}}
	if path, query, found := strings.Cut(target, "?"); found {
		r.PathValue, r.QueryValue = path, &query
	}
	return r
}

// WithHeader sets a header (its name in any case).
func (r *FakeRequest) WithHeader(name, value string) *FakeRequest {
	r.Headers[strings.ToLower(name)] = value
	return r
}

// WithCookie sets a cookie.
func (r *FakeRequest) WithCookie(name, value string) *FakeRequest {
	r.Cookies[name] = value
	return r
}

func (r *FakeRequest) Method() string { return r.MethodValue }
func (r *FakeRequest) Path() string   { return r.PathValue }
func (r *FakeRequest) Query() (string, bool) {
	if r.QueryValue == nil {
		return "", false
	}
	return *r.QueryValue, true
}
func (r *FakeRequest) Authority() (string, bool) {
	if r.AuthorityValue == nil {
		return "", false
	}
	return *r.AuthorityValue, true
}
func (r *FakeRequest) Header(name string) (string, bool) {
	v, ok := r.Headers[strings.ToLower(name)]
	return v, ok
}
func (r *FakeRequest) Cookie(name string) (string, bool) {
	v, ok := r.Cookies[name]
	return v, ok
}
func (r *FakeRequest) ClientIP() string   { return r.ClientIPValue }
func (r *FakeRequest) ClientPort() uint16 { return r.Port }
func (r *FakeRequest) BodyPrefix() ([]byte, bool) {
	return r.Body, r.Body != nil
}

// Stats is one backend's numbers as lbx sends them.
type Stats struct {
	Healthy        bool
	Weight         uint32
	InFlight       uint32
	EwmaLatencyUs  uint32
	RecentFailures uint32
}

// BackendsOf views stats as the Backends lbx would pass (no signals).
func BackendsOf(stats ...Stats) Backends {
	flat := make([]uint32, 0, len(stats)*statsFields)
	for _, s := range stats {
		healthy := uint32(0)
		if s.Healthy {
			healthy = 1
		}
		flat = append(flat, healthy, s.Weight, s.InFlight, s.EwmaLatencyUs, s.RecentFailures)
	}
	return NewBackends(flat, nil, false, nil)
}

// Loads is healthy backends of weight 1 with these requests in flight.
func Loads(inFlight ...uint32) Backends {
	stats := make([]Stats, len(inFlight))
	for i, n := range inFlight {
		stats[i] = Stats{Healthy: true, Weight: 1, InFlight: n}
	}
	return BackendsOf(stats...)
}

// FirstAttempt is the retry context of a request's first attempt.
func FirstAttempt() RetryContext { return RetryContext{} }

// Retry is the retry context after the backends in tried failed the request.
func Retry(tried ...uint32) RetryContext {
	return RetryContext{Attempt: uint32(len(tried)), Tried: tried}
}

// Labeled is a backend identity with labels given as name, value pairs.
func Labeled(id string, labelPairs ...string) BackendInfo {
	labels := map[string]string{}
	for i := 0; i+1 < len(labelPairs); i += 2 {
		labels[labelPairs[i]] = labelPairs[i+1]
	}
	return BackendInfo{ID: id, Address: id + ":80", Weight: 1, Labels: labels}
}

// Start makes a router as lbx does: Init with config, then BackendsChanged with backends. It
// returns Init's error, which is how a test checks a configuration is refused.
func Start(router Router, config string, backends ...BackendInfo) error {
	if _, err := router.Init(config); err != nil {
		return err
	}
	router.BackendsChanged(backends, nil)
	return nil
}
