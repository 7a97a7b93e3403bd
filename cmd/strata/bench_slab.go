package main

import (
	"sync/atomic"

	"github.com/strata-stream/strata/client"
)

// slabSize is the records of one recordSlab.
const slabSize = 1024

// recordSlab is slabSize of bench produce's records, reused once every
// one of them has been acknowledged (a Record is the producer's until its
// promise returns). Allocated afresh, they were 42 % of the bench
// client's allocated bytes at 100 B records.
type recordSlab struct {
	recs    []client.Record
	left    atomic.Int64 // records not yet acknowledged
	promise client.Promise
}

// slabs hands out one producer's records: next is for the producer's
// goroutine only; the promises run on the client's goroutines and give a
// slab back to free once its last record is acknowledged.
type slabs struct {
	free  chan *recordSlab
	onAck client.Promise
	cur   *recordSlab
	i     int // next record of cur
}

// newSlabs returns slabs whose records' promises call onAck.
func newSlabs(onAck client.Promise) *slabs {
	return &slabs{free: make(chan *recordSlab, 256), onAck: onAck}
}

// next returns a record to fill (every field: it may hold an earlier
// one's) and the promise to produce it with.
func (s *slabs) next() (*client.Record, client.Promise) {
	if s.cur == nil || s.i == len(s.cur.recs) {
		s.cur, s.i = s.get(), 0
	}
	r := &s.cur.recs[s.i]
	s.i++
	return r, s.cur.promise
}

func (s *slabs) get() *recordSlab {
	var sl *recordSlab
	select {
	case sl = <-s.free:
	default:
		sl = &recordSlab{recs: make([]client.Record, slabSize)}
		sl.promise = func(r *client.Record, err error) {
			s.onAck(r, err)
			if sl.left.Add(-1) == 0 {
				select {
				case s.free <- sl:
				default: // enough spare slabs: this one is the collector's
				}
			}
		}
	}
	sl.left.Store(int64(len(sl.recs)))
	return sl
}
