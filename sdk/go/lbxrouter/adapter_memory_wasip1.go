//go:build wasip1

package lbxrouter

// Memory for the WASI preview1 adapter that makes this module a component, kept out of Go's
// heap. The adapter needs memory for its state at the first WASI call, which Go makes inside
// its runtime's start-up, before any Go export can run, and Go's allocator treats every byte
// above its static data as its own; so the memory is this array, in Go's static data. Its
// first 16 bytes are a marker by which the component builder (`lbx-plugin-tools
// go-component`) finds it and gives the adapter an allocator over it. The size must match the
// builder's (ARENA_BYTES).
var adapterMemory = [256 << 10]byte{'l', 'b', 'x', ':', 'a', 'd', 'a', 'p', 't', 'e', 'r', '-', 'm', 'e', 'm', 1}
