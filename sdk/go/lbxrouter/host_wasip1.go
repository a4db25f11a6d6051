//go:build wasip1

package lbxrouter

import "runtime"

// lbx's host functions (lbx:router/host@0.2.0): its log and its clock.

//go:wasmimport lbx:router/host@0.2.0 log
func importLog(level, messagePtr, messageLen uint32)

//go:wasmimport lbx:router/host@0.2.0 now-us
func importNowUs() uint64

// Log writes a line to lbx's diagnostic log, attributed to the plugin.
func Log(level LogLevel, message string) {
	b := []byte(message)
	if len(b) == 0 {
		return
	}
	importLog(uint32(level), addressOf(&b[0]), uint32(len(b)))
	runtime.KeepAlive(b)
}

// NowUs is lbx's monotonic clock, in microseconds.
func NowUs() uint64 { return importNowUs() }
