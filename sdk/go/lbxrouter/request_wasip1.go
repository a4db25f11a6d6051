//go:build wasip1

package lbxrouter

import "runtime"

// The request lbx lends to choose, read through the contract's imports
// (lbx:router/types@0.2.0, resource request): each string is fetched when first asked for.

//go:wasmimport lbx:router/types@0.2.0 [method]request.method
func importMethod(self, ret uint32)

//go:wasmimport lbx:router/types@0.2.0 [method]request.path
func importPath(self, ret uint32)

//go:wasmimport lbx:router/types@0.2.0 [method]request.query
func importQuery(self, ret uint32)

//go:wasmimport lbx:router/types@0.2.0 [method]request.authority
func importAuthority(self, ret uint32)

//go:wasmimport lbx:router/types@0.2.0 [method]request.header
func importHeader(self, namePtr, nameLen, ret uint32)

//go:wasmimport lbx:router/types@0.2.0 [method]request.cookie
func importCookie(self, namePtr, nameLen, ret uint32)

//go:wasmimport lbx:router/types@0.2.0 [method]request.client-ip
func importClientIP(self, ret uint32)

//go:wasmimport lbx:router/types@0.2.0 [method]request.client-port
func importClientPort(self uint32) uint32

//go:wasmimport lbx:router/types@0.2.0 [method]request.body-prefix
func importBodyPrefix(self, ret uint32)

//go:wasmimport lbx:router/types@0.2.0 [resource-drop]request
func dropRequest(self uint32)

// Where an import writes its answer: a string (ptr, len) or an option of one (case, ptr, len).
var importResult [3]uint32

type hostRequest uint32

func (r hostRequest) text(fetch func(self, ret uint32)) string {
	at := addressOf(&importResult)
	fetch(uint32(r), at)
	return loadString(loadU32(at), loadU32(at+4))
}

func (r hostRequest) optional(fetch func(self, ret uint32)) (string, bool) {
	at := addressOf(&importResult)
	fetch(uint32(r), at)
	if loadU8(at) == 0 {
		return "", false
	}
	return loadString(loadU32(at+4), loadU32(at+8)), true
}

func (r hostRequest) named(fetch func(self, namePtr, nameLen, ret uint32), name string) (string, bool) {
	at := addressOf(&importResult)
	b := []byte(name)
	if len(b) == 0 {
		fetch(uint32(r), 0, 0, at)
	} else {
		fetch(uint32(r), addressOf(&b[0]), uint32(len(b)), at)
	}
	// Go sees only a number passed: keep the bytes alive until lbx has read them.
	runtime.KeepAlive(b)
	if loadU8(at) == 0 {
		return "", false
	}
	return loadString(loadU32(at+4), loadU32(at+8)), true
}

func (r hostRequest) Method() string            { return r.text(importMethod) }
func (r hostRequest) Path() string              { return r.text(importPath) }
func (r hostRequest) Query() (string, bool)     { return r.optional(importQuery) }
func (r hostRequest) Authority() (string, bool) { return r.optional(importAuthority) }
func (r hostRequest) Header(name string) (string, bool) {
	return r.named(importHeader, name)
}
func (r hostRequest) Cookie(name string) (string, bool) {
	return r.named(importCookie, name)
}
func (r hostRequest) ClientIP() string   { return r.text(importClientIP) }
func (r hostRequest) ClientPort() uint16 { return uint16(importClientPort(uint32(r))) }
func (r hostRequest) BodyPrefix() ([]byte, bool) {
	at := addressOf(&importResult)
	importBodyPrefix(uint32(r), at)
	if loadU8(at) == 0 {
		return nil, false
	}
	return []byte(loadString(loadU32(at+4), loadU32(at+8))), true
}
