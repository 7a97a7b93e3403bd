package hugebuf

import (
	"bytes"
	"runtime"
	"testing"
)

// TestAlloc: a buffer of the capacity asked for, empty, zeroed, writable
// to its capacity, and outside the Go heap on Linux (allocating it does
// not grow the heap).
func TestAlloc(t *testing.T) {
	const n = 5<<20 + 123
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b := Alloc(n)
	runtime.ReadMemStats(&after)
	if len(b) != 0 || cap(b) < n {
		t.Fatalf("len %d cap %d, want 0 and at least %d", len(b), cap(b), n)
	}
	b = b[:n]
	if !bytes.Equal(b, make([]byte, n)) {
		t.Fatal("new buffer not zeroed")
	}
	for i := range b {
		b[i] = byte(i)
	}
	if b[n-1] != byte((n-1)%256) {
		t.Fatal("last byte not written")
	}
	if runtime.GOOS == "linux" && after.HeapSys-before.HeapSys >= n {
		t.Fatalf("heap grew by %d bytes for a %d-byte buffer: not mapped outside it", after.HeapSys-before.HeapSys, n)
	}
	if Alloc(0) != nil {
		t.Fatal("Alloc(0) != nil")
	}
}
