package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteTimeline: each record falls in the window of its send time,
// counted from the measured start, with that window's p50, p99 and max;
// a window no record was sent in is a row of zeros.
func TestWriteTimeline(t *testing.T) {
	ms := time.Millisecond
	since := 50 * ms // the measured start, on the send-time clock
	// Sent at 50 + {0, 10, 20, 30} ms (window 0), none in window 1, 50 +
	// 250 ms (window 2); a send before the start counts in window 0.
	sentAt := []time.Duration{since, since + 10*ms, since + 20*ms, since + 30*ms, since + 250*ms, 0}
	lat := []time.Duration{4 * ms, 1 * ms, 3 * ms, 2 * ms, 9 * ms, 5 * ms}
	path := filepath.Join(t.TempDir(), "tl.tsv")
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if err := writeTimeline(path, 100*ms, start, since, sentAt, lat); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# windows of 100ms from 2026-12-01T00:00:00Z\n" +
		"window_ms\trecords\tp50_ms\tp99_ms\tmax_ms\n" +
		"0\t5\t3.00\t4.00\t5.00\n" +
		"100\t0\t0.00\t0.00\t0.00\n" +
		"200\t1\t9.00\t9.00\t9.00\n"
	if got := string(b); got != want {
		t.Fatalf("timeline:\n%s\nwant:\n%s", got, want)
	}
	if err := writeTimeline(path, 0, start, since, sentAt, lat); err == nil || !strings.Contains(err.Error(), "--timeline-window") {
		t.Fatalf("window 0: err %v, want a --timeline-window error", err)
	}
}
