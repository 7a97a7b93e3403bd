package main

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTimeline: each record falls in the window of its send time,
// counted from ref, with that window's p50, p99 (to the histogram's
// precision) and max; a window no record was sent in is a row of zeros,
// and windows beyond the preallocated ones are added as records need
// them, from concurrent callers.
func TestTimeline(t *testing.T) {
	ms := time.Millisecond
	ref := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	// Expected to span one window; records go to windows 0, 2 and 5.
	tl := newTimeline(ref, 100*ms, 10, 100)
	sends := []struct {
		at  time.Duration // from ref
		lat time.Duration
	}{
		{0, 4 * ms}, {10 * ms, 1 * ms}, {20 * ms, 3 * ms}, {30 * ms, 2 * ms},
		{-5 * ms, 5 * ms}, // before ref: window 0
		{250 * ms, 9 * ms},
	}
	var wg sync.WaitGroup
	for _, s := range sends {
		wg.Add(1)
		go func() { defer wg.Done(); tl.record(ref.Add(s.at), s.lat) }()
	}
	wg.Wait()
	for i := range 100 {
		tl.record(ref.Add(500*ms+time.Duration(i)*ms/2), time.Duration(i+1)*ms/10)
	}
	got := strings.Split(strings.TrimSuffix(string(tl.tsv()), "\n"), "\n")
	want := []struct {
		records       int
		p50, p99, top float64 // ms
	}{
		{5, 3, 4, 5}, {0, 0, 0, 0}, {1, 9, 9, 9}, {0, 0, 0, 0}, {0, 0, 0, 0}, {100, 5, 9.9, 10},
	}
	if len(got) != 2+len(want) || got[0] != "# windows of 100ms from 2026-12-01T00:00:00Z" ||
		got[1] != "window_ms\trecords\tp50_ms\tp99_ms\tmax_ms" {
		t.Fatalf("timeline:\n%s", strings.Join(got, "\n"))
	}
	for w, row := range want {
		var start, records int
		var p50, p99, top float64
		line := got[2+w]
		if _, err := fmt.Sscanf(line, "%d\t%d\t%f\t%f\t%f", &start, &records, &p50, &p99, &top); err != nil {
			t.Fatalf("row %d %q: %v", w, line, err)
		}
		near := func(a, b float64) bool { return math.Abs(a-b) <= b/200+0.005 }
		if start != 100*w || records != row.records || !near(p50, row.p50) || !near(p99, row.p99) || top != row.top {
			t.Errorf("row %d: %q, want %d records, p50 %v, p99 %v, max %v", w, line, row.records, row.p50, row.p99, row.top)
		}
	}
}
