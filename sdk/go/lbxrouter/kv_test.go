package lbxrouter

import (
	"strings"
	"testing"
)

func TestTheTestKitsKvBehavesAsLbxsDoes(t *testing.T) {
	KvClear()
	if n, err := KvIncrement("hits", 2); err != nil || n != 2 {
		t.Fatalf("increment: %d %v", n, err)
	}
	if v, ok := KvGet("hits"); !ok || len(v) != 8 || v[0] != 2 {
		t.Fatalf("a counter is 8 little-endian bytes, got %v", v)
	}
	if stored, _ := KvInsert("hits", []byte("x")); stored {
		t.Fatal("insert must not replace")
	}
	if !KvDelete("hits") || KvDelete("hits") {
		t.Fatal("delete reports whether the key was there")
	}
	if err := KvSet(strings.Repeat("k", 257), nil); err != ErrKeyTooLong {
		t.Fatalf("a long key: %v", err)
	}
}
