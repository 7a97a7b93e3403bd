package broker

import "testing"

// TestUploadBufferPool: at most n kept pairs, large enough for the
// default segment size, each handed out to one upload at a time and
// reused; beyond n, or for a segment larger than the free pair, a pair of
// the Go heap's that the pool does not keep.
func TestUploadBufferPool(t *testing.T) {
	def := int(DefaultTopicConfig.SegmentBytes)
	u := newUploadBufferPool(2)
	a := u.get(1 << 20)
	if !a.kept() || cap(a.batches) < def+uploadBufferSlack || cap(a.object) < def+uploadBufferSlack {
		t.Fatalf("first pair: kept %v, caps %d/%d, want kept and at least %d", a.kept(), cap(a.batches), cap(a.object), def+uploadBufferSlack)
	}
	b := u.get(def)
	if !b.kept() || b == a {
		t.Fatalf("second concurrent pair: kept %v, same as first %v", b.kept(), b == a)
	}
	c := u.get(def)
	if c.kept() || c.batches != nil {
		t.Fatalf("third concurrent pair of a pool of 2 is kept (%v) or preallocated (cap %d)", c.kept(), cap(c.batches))
	}
	u.put(c) // not kept: dropped
	u.put(a)
	if got := u.get(def); got != a {
		t.Fatal("a returned pair is not reused")
	}
	// A segment larger than any kept pair, with both created: a heap
	// pair, and the kept one stays in the pool.
	u.put(a)
	big := u.get(2 * def)
	if big.kept() {
		t.Fatal("a pair for a segment larger than the kept pairs is kept")
	}
	if got := u.get(def); got != a {
		t.Fatal("the kept pair left the pool when a larger segment came")
	}
	// With room for another pair, a larger segment gets a kept pair of its
	// size.
	v := newUploadBufferPool(2)
	small := v.get(1 << 20)
	v.put(small)
	large := v.get(2 * def)
	if !large.kept() || cap(large.batches) < 2*def+uploadBufferSlack {
		t.Fatalf("pair for a %d-byte segment: kept %v cap %d", 2*def, large.kept(), cap(large.batches))
	}
	if got := v.get(1 << 20); got != small {
		t.Fatal("the small pair was not kept")
	}
}
