package lbxrouter

import "errors"

// The kv store lbx keeps for a plugin (interface lbx:router/kv): shared by every instance of
// the plugin and kept across hot swaps, so learned state (a prefix index, sticky assignments)
// survives both. Keys are at most 256 bytes; the store has a size limit.

// ErrKeyTooLong is returned for a key over lbx's limit.
var ErrKeyTooLong = errors.New("kv: key too long")

// ErrStoreFull is returned when the plugin's store is at its size limit.
var ErrStoreFull = errors.New("kv: store full")

func kvError(code uint8) error {
	if code == 0 {
		return ErrKeyTooLong
	}
	return ErrStoreFull
}
