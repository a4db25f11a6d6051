//go:build !wasip1

package lbxrouter

import "time"

// The host functions under `go test`: the log is kept for the test to read, the clock is the
// process's monotonic clock.

// Logged holds the lines a plugin logged in this test process.
var Logged []string

var started = time.Now()

// Log keeps the line in Logged.
func Log(level LogLevel, message string) { Logged = append(Logged, message) }

// NowUs is microseconds since the process started.
func NowUs() uint64 { return uint64(time.Since(started).Microseconds()) }
