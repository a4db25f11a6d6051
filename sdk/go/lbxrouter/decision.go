package lbxrouter

import (
	"encoding/json"
	"errors"
	"strings"
)

// Decision is a router's answer: pick a backend, reject the request, or no opinion (lbx's own
// least-in-flight decides).
type Decision struct {
	kind      decisionKind
	pick      PickDecision
	rejection Rejection
}

type decisionKind uint8

const (
	kindPick decisionKind = iota
	kindReject
	kindNoOpinion
)

// Header is one header field a decision adds.
type Header struct{ Name, Value string }

// PickDecision is a pick with everything it may carry.
type PickDecision struct {
	Backend uint32
	// UpstreamHeaders are added to the request sent to the backend.
	UpstreamHeaders []Header
	// DownstreamHeaders are added to the response sent to the client.
	DownstreamHeaders []Header
	// Options, when set: ranked fallbacks, statuses to retry on, a path rewrite, a tag.
	Options *PickOptions
}

// PickOptions are a pick's rarer parts, absent from a plain pick so it costs less to pass.
type PickOptions struct {
	Fallbacks []uint32
	RetryOn   []uint16
	Rewrite   *string
	Tag       uint64
}

// Rejection answers the client without contacting a backend.
type Rejection struct {
	Status  uint16
	Headers []Header
}

// Pick sends the request to backend i.
func Pick(i int) Decision { return Decision{kind: kindPick, pick: PickDecision{Backend: uint32(i)}} }

// PickWith sends the request as p says.
func PickWith(p PickDecision) Decision { return Decision{kind: kindPick, pick: p} }

// Reject answers the client with status and headers.
func Reject(status uint16, headers ...Header) Decision {
	return Decision{kind: kindReject, rejection: Rejection{Status: status, Headers: headers}}
}

// NoOpinion lets lbx's built-in least-in-flight choose.
func NoOpinion() Decision { return Decision{kind: kindNoOpinion} }

// Picked is the backend a pick chose, or false for any other decision.
func (d Decision) Picked() (int, bool) {
	return int(d.pick.Backend), d.kind == kindPick
}

// Pick is the whole pick, or false for any other decision.
func (d Decision) Pick() (PickDecision, bool) { return d.pick, d.kind == kindPick }

// Rejected is the rejection, or false for any other decision.
func (d Decision) Rejected() (Rejection, bool) { return d.rejection, d.kind == kindReject }

// IsNoOpinion reports whether the router left the choice to lbx.
func (d Decision) IsNoOpinion() bool { return d.kind == kindNoOpinion }

// RequireEmptyConfig refuses any configuration but an empty one.
func RequireEmptyConfig(config string) error {
	trimmed := strings.TrimSpace(config)
	if trimmed == "" || trimmed == "{}" || trimmed == "null" {
		return nil
	}
	return errors.New("this plugin takes no configuration")
}

// ParseConfig decodes the JSON configuration into v, refusing keys v does not have so a typo
// in lbx.toml is named instead of ignored.
func ParseConfig(config string, v any) error {
	if strings.TrimSpace(config) == "" {
		return nil
	}
	decoder := json.NewDecoder(strings.NewReader(config))
	decoder.DisallowUnknownFields()
	return decoder.Decode(v)
}
