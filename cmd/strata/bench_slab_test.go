package main

import (
	"errors"
	"testing"

	"github.com/strata-stream/strata/client"
)

// TestSlabsReuseOnlyFullyAcknowledged: a slab's records come back only
// once every one of them has been acknowledged, each promise reports to
// onAck, and a slab with a record outstanding is never handed out again.
func TestSlabsReuseOnlyFullyAcknowledged(t *testing.T) {
	var acked, failed int
	s := newSlabs(func(_ *client.Record, err error) {
		acked++
		if err != nil {
			failed++
		}
	})
	type taken struct {
		r       *client.Record
		promise client.Promise
	}
	take := func(n int) []taken {
		out := make([]taken, n)
		for i := range out {
			r, p := s.next()
			out[i] = taken{r, p}
		}
		return out
	}
	first := take(slabSize)
	second := take(slabSize) // a second slab: the first is not acknowledged
	if &first[0].r.Value == &second[0].r.Value {
		t.Fatal("a slab with records outstanding was handed out again")
	}
	for i, x := range first[:slabSize-1] {
		var err error
		if i == 7 {
			err = errors.New("refused")
		}
		x.promise(x.r, err)
	}
	if third := take(1); third[0].r == first[0].r {
		t.Fatal("the first slab came back with one record unacknowledged")
	}
	first[slabSize-1].promise(first[slabSize-1].r, nil)
	// The rest of the third slab, then the first one again.
	take(slabSize - 1)
	if again := take(1); again[0].r != first[0].r {
		t.Fatal("a fully acknowledged slab was not reused")
	}
	if acked != slabSize || failed != 1 {
		t.Fatalf("onAck saw %d records, %d failed; want %d and 1", acked, failed, slabSize)
	}
}
