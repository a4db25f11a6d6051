// Header router for lbx, in Go on the lbxrouter SDK: the same rules as plugins/header_router
// (Rust) and examples/c/header_router (path prefix, header, cookie or percentage).
//
// Configuration ([plugin.config] in lbx.toml, reaching Init as JSON):
//
//	[plugin.config]
//	default = { version = "stable" }
//	rules = [
//	  { path_prefix = "/api", group = { pool = "api" } },
//	  { header = "x-canary", equals = "1", group = { version = "canary" } },
//	  { cookie = "beta", equals = "yes", group = { version = "canary" } },
//	  { percent = 5.0, group = { version = "canary" } },
//	]
//
// The first matching rule picks a group of backends by labels; within it the healthy backend
// with the fewest requests in flight wins (on a retry, one not yet tried); an empty group falls
// back to `default`, then to lbx's own choice (no opinion).
//
// Test: go test ./...   Build: bash build.sh   Check: lbx check header_router.wasm
package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"lbx.dev/router/lbxrouter"
)

type ruleConfig struct {
	PathPrefix *string           `json:"path_prefix"`
	Header     *string           `json:"header"`
	Cookie     *string           `json:"cookie"`
	Equals     *string           `json:"equals"`
	Percent    *float64          `json:"percent"`
	Group      map[string]string `json:"group"`
}

type config struct {
	Rules   []ruleConfig      `json:"rules"`
	Default map[string]string `json:"default"`
}

// rule is one configured rule and the indexes of its group's backends.
type rule struct {
	ruleConfig
	members []int
}

func (r *rule) matches(req lbxrouter.Request) bool {
	switch {
	case r.PathPrefix != nil:
		return strings.HasPrefix(req.Path(), *r.PathPrefix)
	case r.Header != nil:
		value, found := req.Header(*r.Header)
		return found && (r.Equals == nil || value == *r.Equals)
	case r.Cookie != nil:
		value, found := req.Cookie(*r.Cookie)
		return found && (r.Equals == nil || value == *r.Equals)
	default:
		return rand.Float64()*100 < *r.Percent
	}
}

// HeaderRouter routes to a labelled group chosen by the first matching rule.
type HeaderRouter struct {
	lbxrouter.Base
	rules          []rule
	defaultGroup   map[string]string
	defaultMembers []int
	candidates     []int // reused by every decision
	inGroup        []int
}

func (h *HeaderRouter) Init(text string) (lbxrouter.Features, error) {
	var c config
	if err := lbxrouter.ParseConfig(text, &c); err != nil {
		return 0, fmt.Errorf("plugin.config: %w", err)
	}
	for i, r := range c.Rules {
		kinds := 0
		for _, set := range []bool{r.PathPrefix != nil, r.Header != nil, r.Cookie != nil, r.Percent != nil} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			return 0, fmt.Errorf("rules[%d] needs exactly one of path_prefix, header, cookie or percent", i)
		}
		if len(r.Group) == 0 {
			return 0, fmt.Errorf("rules[%d]: group is empty", i)
		}
		if r.Percent != nil && (*r.Percent < 0 || *r.Percent > 100) {
			return 0, fmt.Errorf("rules[%d]: percent %v is not within 0..=100", i, *r.Percent)
		}
		if r.Header != nil {
			lower := strings.ToLower(*r.Header)
			r.Header = &lower
		}
		h.rules = append(h.rules, rule{ruleConfig: r})
	}
	h.defaultGroup = c.Default
	lbxrouter.Log(lbxrouter.LogInfo, fmt.Sprintf("go header router: %d rules", len(h.rules)))
	return 0, nil
}

// BackendsChanged finds each group's members when the set changes, not per request.
func (h *HeaderRouter) BackendsChanged(backends []lbxrouter.BackendInfo, _ []string) {
	members := func(group map[string]string) []int {
		var found []int
		for i, b := range backends {
			if b.Matches(group) {
				found = append(found, i)
			}
		}
		return found
	}
	for i := range h.rules {
		h.rules[i].members = members(h.rules[i].Group)
	}
	h.defaultMembers = members(h.defaultGroup)
}

func (h *HeaderRouter) leastInGroup(backends lbxrouter.Backends, members []int) (int, bool) {
	h.inGroup = h.inGroup[:0]
	for _, i := range h.candidates {
		if slices.Contains(members, i) {
			h.inGroup = append(h.inGroup, i)
		}
	}
	return backends.LeastInFlight(h.inGroup)
}

func (h *HeaderRouter) Choose(req lbxrouter.Request, backends lbxrouter.Backends, retry lbxrouter.RetryContext) lbxrouter.Decision {
	h.candidates = backends.Candidates(retry, h.candidates[:0])
	for i := range h.rules {
		if h.rules[i].matches(req) {
			if best, ok := h.leastInGroup(backends, h.rules[i].members); ok {
				return lbxrouter.Pick(best)
			}
			break // the group has nobody usable: the default group decides
		}
	}
	if best, ok := h.leastInGroup(backends, h.defaultMembers); ok {
		return lbxrouter.Pick(best)
	}
	return lbxrouter.NoOpinion()
}
