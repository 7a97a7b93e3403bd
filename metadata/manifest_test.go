package metadata

import (
	"errors"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func seg(base, last int64) SegmentEntry {
	return SegmentEntry{Key: fmt.Sprintf("topics/m/0/%020d-%020d-e1.seg", base, last), BaseOffset: base, LastOffset: last, Records: last - base + 1, Size: 10, RawSize: 20, Epoch: 1}
}

// TestChangeManifest: a manifest change (compaction's swap, retention's
// expiry) lands whole or not at all: fenced by the leadership, refused
// when an entry it removes is gone, and it records its garbage and state
// in the same transaction.
func TestChangeManifest(t *testing.T) {
	s, ctx := newStore(t)
	topic, err := s.CreateTopic(ctx, Topic{Name: "m", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	l1 := lease(t, ctx)
	a, err := s.AcquireLeadership(ctx, topic, 0, 1, l1)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []SegmentEntry{seg(0, 9), seg(10, 19), seg(20, 29), seg(30, 39)} {
		if err := s.CommitSegment(ctx, a, e); err != nil {
			t.Fatal(err)
		}
	}
	bases := func() string {
		es, err := s.ListSegments(ctx, "m", 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, fmt.Sprintf("%d-%d", e.BaseOffset, e.LastOffset))
		}
		return fmt.Sprint(out)
	}
	// Compaction: [0,9] and [10,19] become one object [0,19] (the put of
	// segments/0 replaces the old one in the same transaction).
	merged := seg(0, 19)
	merged.Key = "topics/m/0/merged.seg"
	status := CompactionStatus{CleanedEnd: 20, DirtyRatio: 0.5, LastRunMs: 1234}
	err = s.ChangeManifest(ctx, a, ManifestChange{Remove: []SegmentEntry{seg(0, 9), seg(10, 19)}, Add: []SegmentEntry{merged},
		Garbage: []string{seg(0, 9).Key, seg(10, 19).Key}, Reason: "compaction", Compaction: &status})
	if err != nil {
		t.Fatal(err)
	}
	if got := bases(); got != "[0-19 20-29 30-39]" {
		t.Fatalf("manifest after the swap: %s", got)
	}
	if st, ok, err := s.GetCompactionStatus(ctx, "m", 0); err != nil || !ok || st != status {
		t.Fatalf("compaction status %+v %v %v", st, ok, err)
	}
	// A change whose view is stale (an entry already gone) changes nothing.
	err = s.ChangeManifest(ctx, a, ManifestChange{Remove: []SegmentEntry{seg(10, 19), seg(20, 29)}, Garbage: []string{"x"}})
	if !errors.Is(err, ErrManifestChanged) {
		t.Fatalf("stale change: %v, want ErrManifestChanged", err)
	}
	if got := bases(); got != "[0-19 20-29 30-39]" {
		t.Fatalf("manifest after a refused change: %s", got)
	}
	// So does one whose view holds an entry since replaced at the same
	// base: retention expiring [0,9] from a view that missed the swap
	// would drop [0,19] (and offsets 10-19 with it) without recording
	// its object as garbage.
	err = s.ChangeManifest(ctx, a, ManifestChange{Remove: []SegmentEntry{seg(0, 9)}, Garbage: []string{seg(0, 9).Key}, Reason: "retention",
		State: &PartitionState{LogStartOffset: 10, HighWatermark: 40}})
	if !errors.Is(err, ErrManifestChanged) {
		t.Fatalf("change removing a replaced entry: %v, want ErrManifestChanged", err)
	}
	if got := bases(); got != "[0-19 20-29 30-39]" {
		t.Fatalf("manifest after a refused change: %s", got)
	}
	// Retention: drop the oldest entry and advance the log start, at once.
	err = s.ChangeManifest(ctx, a, ManifestChange{Remove: []SegmentEntry{merged}, Garbage: []string{merged.Key}, Reason: "retention",
		State: &PartitionState{LogStartOffset: 20, HighWatermark: 40}})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := s.GetPartitionState(ctx, "m", 0); st.LogStartOffset != 20 || st.HighWatermark != 40 {
		t.Fatalf("state after retention: %+v", st)
	}
	keys, err := s.SegmentKeys(ctx, "m")
	if err != nil || len(keys) != 2 || !keys[seg(20, 29).Key] || !keys[seg(30, 39).Key] {
		t.Fatalf("segment keys %v %v", keys, err)
	}
	gs, err := s.ListGarbage(ctx, 10)
	if err != nil || len(gs) != 2 {
		t.Fatalf("garbage %+v %v", gs, err)
	}
	if fmt.Sprint(gs[0].Keys) != fmt.Sprint([]string{seg(0, 9).Key, seg(10, 19).Key}) || gs[0].Reason != "compaction" ||
		fmt.Sprint(gs[1].Keys) != fmt.Sprint([]string{merged.Key}) || gs[1].Topic != "m" || gs[1].SinceMs <= 0 {
		t.Fatalf("garbage records %+v", gs)
	}
	// A deposed leader changes nothing.
	if _, err := testCli.Revoke(ctx, l1); err != nil {
		t.Fatal(err)
	}
	err = s.ChangeManifest(ctx, a, ManifestChange{Remove: []SegmentEntry{seg(20, 29)}, Garbage: []string{"y"}, State: &PartitionState{LogStartOffset: 30}})
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed leader's change: %v, want ErrFenced", err)
	}
	if got := bases(); got != "[20-29 30-39]" {
		t.Fatalf("a fenced change landed: %s", got)
	}
	if gs, _ := s.ListGarbage(ctx, 10); len(gs) != 2 {
		t.Fatalf("a fenced change recorded garbage: %+v", gs)
	}
	if err := s.ChangeManifest(ctx, a, ManifestChange{Compaction: &CompactionStatus{}}); !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed leader's status: %v, want ErrFenced", err)
	}
	// Too large a change is refused before it reaches etcd.
	var many []SegmentEntry
	for i := range int64(MaxManifestChange + 1) {
		many = append(many, seg(i*10, i*10+9))
	}
	if err := s.ChangeManifest(ctx, a, ManifestChange{Remove: many}); err == nil {
		t.Fatal("a change above MaxManifestChange was accepted")
	}
}

// TestDeleteGarbage: only the current controller deletes garbage records.
func TestDeleteGarbage(t *testing.T) {
	s, ctx := newStore(t)
	topic, _ := s.CreateTopic(ctx, Topic{Name: "g", Partitions: 1})
	a, err := s.AcquireLeadership(ctx, topic, 0, 1, lease(t, ctx))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CommitSegment(ctx, a, seg(0, 9)); err != nil {
		t.Fatal(err)
	}
	if err := s.ChangeManifest(ctx, a, ManifestChange{Remove: []SegmentEntry{seg(0, 9)}, Garbage: []string{seg(0, 9).Key}}); err != nil {
		t.Fatal(err)
	}
	gs, err := s.ListGarbage(ctx, 10)
	if err != nil || len(gs) != 1 {
		t.Fatalf("garbage %+v %v", gs, err)
	}
	l := lease(t, ctx)
	key := fmt.Sprintf("%s/%x", s.ControllerPrefix(), l)
	r, err := testCli.Put(ctx, key, "1", clientv3.WithLease(l))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGarbage(ctx, ControllerFence{Key: key, Rev: r.Header.Revision + 1}, gs[0]); !errors.Is(err, ErrFenced) {
		t.Fatalf("delete with a stale fence: %v, want ErrFenced", err)
	}
	if err := s.DeleteGarbage(ctx, ControllerFence{Key: key, Rev: r.Header.Revision}, gs[0]); err != nil {
		t.Fatal(err)
	}
	if gs, _ := s.ListGarbage(ctx, 10); len(gs) != 0 {
		t.Fatalf("garbage left: %+v", gs)
	}
	if err := s.DeleteGarbage(ctx, ControllerFence{Key: key, Rev: r.Header.Revision}, Garbage{Keys: []string{"x"}}); err == nil {
		t.Fatal("deleted a record not read from etcd")
	}
}

// FuzzDecodeGarbage: the garbage record decoder never panics and accepts
// only records that name keys.
func FuzzDecodeGarbage(f *testing.F) {
	f.Add([]byte(`{"keys":["topics/a.1/0/x.seg"],"topic":"a","partition":0,"since_ms":5}`))
	f.Add([]byte(`{"keys":[],"since_ms":5}`))
	f.Add([]byte(`{"keys":["/abs"],"since_ms":5}`))
	f.Add([]byte(`nope`))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := DecodeGarbage(b)
		if err != nil {
			return
		}
		if len(g.Keys) == 0 || g.SinceMs <= 0 {
			t.Fatalf("accepted %+v", g)
		}
		for _, k := range g.Keys {
			if k == "" || k[0] == '/' {
				t.Fatalf("accepted key %q", k)
			}
		}
	})
}

// FuzzDecodeCompactionStatus: the compaction status decoder never panics
// and accepts only statuses a run can write.
func FuzzDecodeCompactionStatus(f *testing.F) {
	f.Add([]byte(`{"cleaned_end":100,"dirty_ratio":0.25,"kept_tombstones":3,"oldest_tombstone_ms":5,"last_run_ms":7}`))
	f.Add([]byte(`{"cleaned_end":-1}`))
	f.Add([]byte(`{"dirty_ratio":1.5}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeCompactionStatus(b)
		if err != nil {
			return
		}
		if st.CleanedEnd < 0 || st.DirtyRatio < 0 || st.DirtyRatio > 1 || st.KeptTombstones < 0 {
			t.Fatalf("accepted %+v", st)
		}
	})
}
