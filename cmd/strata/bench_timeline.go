package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-stream/strata/internal/lathist"
)

// timeline is bench produce's --timeline: an ack-latency histogram per
// window of send time from ref. record may be called concurrently.
type timeline struct {
	ref    time.Time
	window time.Duration
	// windows is replaced (under grow), never changed in place: record
	// reads it without a lock.
	windows atomic.Pointer[[]*lathist.Hist]
	grow    sync.Mutex
}

// maxPrealloc bounds the windows written before the clock starts (each
// is a lathist.Hist, about 35 KB: 36 MB at most); a run outlasting them
// grows the list.
const maxPrealloc = 1024

// newTimeline returns a timeline from ref with the windows that records
// at rate (records/s, 0 for as fast as possible) are expected to span.
func newTimeline(ref time.Time, window time.Duration, records int64, rate float64) *timeline {
	n := 1
	if rate > 0 {
		n += int(min(float64(records)/rate/window.Seconds(), maxPrealloc))
	}
	ws := make([]*lathist.Hist, n)
	for i := range ws {
		ws[i] = lathist.New()
	}
	t := &timeline{ref: ref, window: window}
	t.windows.Store(&ws)
	return t
}

// record counts latency d of a record sent at sent (a send before ref
// counts in the first window).
func (t *timeline) record(sent time.Time, d time.Duration) {
	w := max(int(sent.Sub(t.ref)/t.window), 0)
	ws := *t.windows.Load()
	if w >= len(ws) {
		ws = t.growTo(w + 1)
	}
	ws[w].Record(d)
}

func (t *timeline) growTo(n int) []*lathist.Hist {
	t.grow.Lock()
	defer t.grow.Unlock()
	ws := *t.windows.Load()
	if len(ws) >= n {
		return ws
	}
	grown := make([]*lathist.Hist, max(n, 2*len(ws)))
	copy(grown, ws)
	for i := len(ws); i < len(grown); i++ {
		grown[i] = lathist.New()
	}
	t.windows.Store(&grown)
	return grown
}

// tsv is the timeline as TSV (ms): per window up to the last with a
// record, its start, the records sent in it and their ack latency p50,
// p99 and max; a window no record was sent in is a row of zeros.
func (t *timeline) tsv() []byte {
	ws := *t.windows.Load()
	last := -1
	for i, h := range ws {
		if h.Count() > 0 {
			last = i
		}
	}
	var b []byte
	b = fmt.Appendf(b, "# windows of %s from %s\n", t.window, t.ref.UTC().Format(time.RFC3339Nano))
	b = append(b, "window_ms\trecords\tp50_ms\tp99_ms\tmax_ms\n"...)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	for w, h := range ws[:last+1] {
		b = fmt.Appendf(b, "%d\t%d\t%.2f\t%.2f\t%.2f\n", (time.Duration(w) * t.window).Milliseconds(),
			h.Count(), ms(h.Quantile(0.50)), ms(h.Quantile(0.99)), ms(h.Max()))
	}
	return b
}
