//go:build wasip1

package lbxrouter

// The component model's canonical ABI by hand, for the few types the contract uses: Go has no
// wit-bindgen generator reachable here (wit-bindgen-go's `cm` package comes from the Go module
// proxy, which these machines cannot reach), and go:wasmexport/go:wasmimport pass only numbers.
//
// Memory: lbx writes an export's arguments (and an import's results) into buffers it asks for
// through cabi_realloc. They come from one arena, reused by every call: a decision's arguments
// would otherwise be garbage every call, and on wasm Go's collector stops the world (a decision
// waiting on a collection of the whole heap can miss its deadline). An arena too small for a
// call is replaced by a bigger one, kept; the old one lives until the call ends. Arguments are
// copied into Go values or read only during the call, so the arena is free again when the
// export returns. What an export returns (a decision's strings and lists) is kept in `returned`
// until the next export starts, by which time lbx has read it: no post-return call is needed.

import "unsafe"

var (
	arena    = make([]byte, 64<<10)
	used     uintptr
	outgrown [][]byte
	returned []any
)

//go:wasmexport cabi_realloc
func cabiRealloc(oldPtr, oldSize, align, newSize uint32) uint32 {
	if newSize == 0 {
		return align
	}
	base := uintptr(unsafe.Pointer(&arena[0]))
	start := (base + used + uintptr(align) - 1) &^ (uintptr(align) - 1)
	if start+uintptr(newSize) > base+uintptr(len(arena)) {
		outgrown = append(outgrown, arena)
		arena = make([]byte, 2*(len(arena)+int(newSize)+int(align)))
		base, used = uintptr(unsafe.Pointer(&arena[0])), 0
		start = (base + uintptr(align) - 1) &^ (uintptr(align) - 1)
	}
	used = start + uintptr(newSize) - base
	if oldPtr != 0 && oldSize > 0 {
		copy(arena[start-base:], unsafe.Slice((*byte)(pointer(oldPtr)), oldSize))
	}
	return uint32(start)
}

// callDone frees the arena for the next call.
func callDone() {
	used = 0
	clear(outgrown)
	outgrown = outgrown[:0]
}

// callStarts forgets what the previous export returned: lbx has read it.
func callStarts() {
	clear(returned)
	returned = returned[:0]
}

func pointer(at uint32) unsafe.Pointer { return unsafe.Pointer(uintptr(at)) }

func addressOf[T any](v *T) uint32 { return uint32(uintptr(unsafe.Pointer(v))) }

func loadU8(at uint32) uint8   { return *(*uint8)(pointer(at)) }
func loadU32(at uint32) uint32 { return *(*uint32)(pointer(at)) }

func storeU8(at uint32, v uint8)   { *(*uint8)(pointer(at)) = v }
func storeU16(at uint32, v uint16) { *(*uint16)(pointer(at)) = v }
func storeU32(at uint32, v uint32) { *(*uint32)(pointer(at)) = v }
func storeU64(at uint32, v uint64) { *(*uint64)(pointer(at)) = v }

// loadString copies a string lbx wrote at ptr (length bytes) into Go memory.
func loadString(ptr, length uint32) string {
	if length == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(pointer(ptr)), length))
}

// viewU32s reads a list<u32> in place: valid only until the export returns.
func viewU32s(ptr, length uint32) []uint32 {
	if length == 0 {
		return nil
	}
	return unsafe.Slice((*uint32)(pointer(ptr)), length)
}

// viewF64s reads a list<f64> in place: valid only until the export returns.
func viewF64s(ptr, length uint32) []float64 {
	if length == 0 {
		return nil
	}
	return unsafe.Slice((*float64)(pointer(ptr)), length)
}

// lowerString returns where s's bytes are for lbx to read after the export returns.
func lowerString(s string) (uint32, uint32) {
	if len(s) == 0 {
		return 0, 0
	}
	b := []byte(s)
	returned = append(returned, b)
	return addressOf(&b[0]), uint32(len(b))
}

// lowerHeaders writes a list<header> (each 16 bytes: name, value) for lbx to read.
func lowerHeaders(headers []Header) (uint32, uint32) {
	if len(headers) == 0 {
		return 0, 0
	}
	words := make([]uint32, 4*len(headers))
	for i, h := range headers {
		words[4*i], words[4*i+1] = lowerString(h.Name)
		words[4*i+2], words[4*i+3] = lowerString(h.Value)
	}
	returned = append(returned, words)
	return addressOf(&words[0]), uint32(len(headers))
}

func lowerU32s(values []uint32) (uint32, uint32) {
	if len(values) == 0 {
		return 0, 0
	}
	copied := append([]uint32(nil), values...)
	returned = append(returned, copied)
	return addressOf(&copied[0]), uint32(len(copied))
}

func lowerU16s(values []uint16) (uint32, uint32) {
	if len(values) == 0 {
		return 0, 0
	}
	copied := append([]uint16(nil), values...)
	returned = append(returned, copied)
	return addressOf(&copied[0]), uint32(len(copied))
}
