package compaction

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-stream/strata/metadata"
)

func entry(base, last, raw int64) metadata.SegmentEntry {
	return metadata.SegmentEntry{Key: fmt.Sprint(base), BaseOffset: base, LastOffset: last, RawSize: raw}
}

func TestDirtyRatioAndDue(t *testing.T) {
	es := []metadata.SegmentEntry{entry(0, 99, 300), entry(100, 199, 100), entry(200, 299, 100)}
	now := time.UnixMilli(5000)
	cases := []struct {
		name  string
		es    []metadata.SegmentEntry
		st    metadata.CompactionStatus
		ratio float64
		due   bool
	}{
		{"never compacted", es, metadata.CompactionStatus{}, 1, true},
		{"two fifths dirty", es, metadata.CompactionStatus{CleanedEnd: 100}, 0.4, false},
		{"one fifth dirty", es, metadata.CompactionStatus{CleanedEnd: 200}, 0.2, false},
		{"clean", es, metadata.CompactionStatus{CleanedEnd: 300}, 0, false},
		{"clean, a tombstone due", es, metadata.CompactionStatus{CleanedEnd: 300, KeptTombstones: 1, OldestTombstoneMs: 4000}, 0, true},
		{"clean, a tombstone not yet due", es, metadata.CompactionStatus{CleanedEnd: 300, KeptTombstones: 1, OldestTombstoneMs: 4001}, 0, false},
		{"clean, a tombstone at 0 due", es, metadata.CompactionStatus{CleanedEnd: 300, KeptTombstones: 1}, 0, true},
		{"empty", nil, metadata.CompactionStatus{KeptTombstones: 1}, 0, false},
	}
	for _, c := range cases {
		if r := DirtyRatio(c.es, c.st.CleanedEnd); r != c.ratio {
			t.Errorf("%s: DirtyRatio = %v, want %v", c.name, r, c.ratio)
		}
		if d := Due(c.es, c.st, now, 0.5, time.Second); d != c.due {
			t.Errorf("%s: Due = %v, want %v", c.name, d, c.due)
		}
	}
	if !Due(es, metadata.CompactionStatus{CleanedEnd: 100}, now, 0.4, time.Second) {
		t.Error("not due at a ratio equal to the minimum")
	}
}

func TestMergePlan(t *testing.T) {
	seq := func(sizes ...int64) []metadata.SegmentEntry {
		var out []metadata.SegmentEntry
		base := int64(0)
		for _, s := range sizes {
			out = append(out, entry(base, base+9, s))
			base += 10
		}
		return out
	}
	gap := seq(100, 100, 100, 100, 100, 100)
	gap[3].BaseOffset, gap[3].LastOffset = 35, 39 // 30-34 missing
	cases := []struct {
		name string
		es   []metadata.SegmentEntry
		max  int
		want string
	}{
		{"too few", seq(100, 100, 100), 64, "[]"},
		{"four small", seq(100, 100, 100, 100), 64, "[[0 4]]"},
		{"bounded by segment.bytes: three fit, fewer than four", seq(300, 300, 300, 300, 300, 300, 300, 300), 64, "[]"},
		{"bounded by segment.bytes", seq(200, 200, 200, 200, 200, 200, 200, 200, 200, 200), 64, "[[0 5] [5 10]]"},
		{"large ones stay", seq(600, 100, 100, 100, 100, 600), 64, "[[1 5]]"},
		{"tiers do not mix", seq(100, 100, 100, 100, 10, 10, 10, 10, 10), 64, "[[0 4] [4 9]]"},
		{"a tier jump breaks a run", seq(100, 100, 10, 100, 100), 64, "[]"},
		{"max inputs", seq(64, 64, 64, 64, 64, 64, 64, 64, 64), 4, "[[0 4] [4 8]]"},
		{"no merging over a gap", gap, 64, "[]"},
	}
	for _, c := range cases {
		if got := fmt.Sprint(MergePlan(c.es, 1000, c.max)); got != c.want {
			t.Errorf("%s: MergePlan = %s, want %s", c.name, got, c.want)
		}
	}
}

// TestLimiter: reads are paced at the rate, across callers.
func TestLimiter(t *testing.T) {
	l := NewLimiter(1000) // bytes per second
	clock := time.Unix(0, 0)
	var slept []time.Duration
	l.now = func() time.Time { return clock }
	l.sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }
	ctx := context.Background()
	for range 3 {
		if err := l.Wait(ctx, 500); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(slept) != "[500ms 1s]" {
		t.Fatalf("waits %v, want [500ms 1s]", slept)
	}
	clock = clock.Add(10 * time.Second) // idle: no credit is banked beyond now
	slept = nil
	_ = l.Wait(ctx, 2000)
	_ = l.Wait(ctx, 1)
	if fmt.Sprint(slept) != "[2s]" {
		t.Fatalf("waits after idling %v, want [2s]", slept)
	}
	var unlimited *Limiter
	if err := unlimited.Wait(ctx, 1<<40); err != nil {
		t.Fatal(err)
	}
}
