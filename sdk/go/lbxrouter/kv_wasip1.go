//go:build wasip1

package lbxrouter

import "runtime"

//go:wasmimport lbx:router/kv@0.2.0 get
func importKvGet(keyPtr, keyLen, ret uint32)

//go:wasmimport lbx:router/kv@0.2.0 set
func importKvSet(keyPtr, keyLen, valuePtr, valueLen, ret uint32)

//go:wasmimport lbx:router/kv@0.2.0 insert
func importKvInsert(keyPtr, keyLen, valuePtr, valueLen, ret uint32)

//go:wasmimport lbx:router/kv@0.2.0 delete
func importKvDelete(keyPtr, keyLen uint32) uint32

//go:wasmimport lbx:router/kv@0.2.0 increment
func importKvIncrement(keyPtr, keyLen uint32, delta int64, ret uint32)

// Keys and values are passed to lbx as addresses, which Go does not see as references:
// runtime.KeepAlive holds each until lbx has read it.

// Where a kv import writes its answer: up to a result<s64, kv-error> (case, then the s64 at 8).
var kvResult [2]uint64

func bytesArg(b []byte) (uint32, uint32) {
	if len(b) == 0 {
		return 0, 0
	}
	return addressOf(&b[0]), uint32(len(b))
}

// KvGet is the value stored under key, or false.
func KvGet(key string) ([]byte, bool) {
	k := []byte(key)
	keyPtr, keyLen := bytesArg(k)
	at := addressOf(&kvResult)
	importKvGet(keyPtr, keyLen, at)
	runtime.KeepAlive(k)
	if loadU8(at) == 0 {
		return nil, false
	}
	return []byte(loadString(loadU32(at+4), loadU32(at+8))), true
}

// KvSet stores value under key, replacing what was there.
func KvSet(key string, value []byte) error {
	k := []byte(key)
	keyPtr, keyLen := bytesArg(k)
	valuePtr, valueLen := bytesArg(value)
	at := addressOf(&kvResult)
	importKvSet(keyPtr, keyLen, valuePtr, valueLen, at)
	runtime.KeepAlive(k)
	runtime.KeepAlive(value)
	if loadU8(at) != 0 {
		return kvError(loadU8(at + 1))
	}
	return nil
}

// KvInsert stores value under key only if the key is absent; it reports whether it stored.
func KvInsert(key string, value []byte) (bool, error) {
	k := []byte(key)
	keyPtr, keyLen := bytesArg(k)
	valuePtr, valueLen := bytesArg(value)
	at := addressOf(&kvResult)
	importKvInsert(keyPtr, keyLen, valuePtr, valueLen, at)
	runtime.KeepAlive(k)
	runtime.KeepAlive(value)
	if loadU8(at) != 0 {
		return false, kvError(loadU8(at + 1))
	}
	return loadU8(at+1) != 0, nil
}

// KvDelete removes key; it reports whether the key was there.
func KvDelete(key string) bool {
	k := []byte(key)
	keyPtr, keyLen := bytesArg(k)
	deleted := importKvDelete(keyPtr, keyLen) != 0
	runtime.KeepAlive(k)
	return deleted
}

// KvIncrement adds delta to the number under key (absent counts as 0) and returns the sum.
func KvIncrement(key string, delta int64) (int64, error) {
	k := []byte(key)
	keyPtr, keyLen := bytesArg(k)
	at := addressOf(&kvResult)
	importKvIncrement(keyPtr, keyLen, delta, at)
	runtime.KeepAlive(k)
	if loadU8(at) != 0 {
		return 0, kvError(loadU8(at + 8))
	}
	return int64(kvResult[1]), nil
}
