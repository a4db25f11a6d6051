//go:build !wasip1

package lbxrouter

import "encoding/binary"

// The kv store under `go test`: a map in the test process, emptied by KvClear. Numbers are
// kept as lbx keeps them, 8 bytes little-endian, so KvGet reads what KvIncrement wrote.

var kvStore = map[string][]byte{}

const kvMaxKey = 256

// KvClear empties the test store.
func KvClear() { kvStore = map[string][]byte{} }

func KvGet(key string) ([]byte, bool) {
	v, ok := kvStore[key]
	return append([]byte(nil), v...), ok
}

func KvSet(key string, value []byte) error {
	if len(key) > kvMaxKey {
		return ErrKeyTooLong
	}
	kvStore[key] = append([]byte(nil), value...)
	return nil
}

func KvInsert(key string, value []byte) (bool, error) {
	if len(key) > kvMaxKey {
		return false, ErrKeyTooLong
	}
	if _, ok := kvStore[key]; ok {
		return false, nil
	}
	kvStore[key] = append([]byte(nil), value...)
	return true, nil
}

func KvDelete(key string) bool {
	_, ok := kvStore[key]
	delete(kvStore, key)
	return ok
}

func KvIncrement(key string, delta int64) (int64, error) {
	if len(key) > kvMaxKey {
		return 0, ErrKeyTooLong
	}
	var n int64
	if v, ok := kvStore[key]; ok && len(v) == 8 {
		n = int64(binary.LittleEndian.Uint64(v))
	}
	n += delta
	kvStore[key] = binary.LittleEndian.AppendUint64(nil, uint64(n))
	return n, nil
}
