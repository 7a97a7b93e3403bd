package retention

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-stream/strata/internal/etcdtest"
	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/tiering"
	"github.com/strata-stream/strata/tiering/objstore"
)

// sweepEnv is a real embedded etcd with one topic led by broker 1, an
// in-memory bucket, and a controller election key.
type sweepEnv struct {
	store  *metadata.Store
	cli    *clientv3.Client
	bucket *objstore.Mem
	topic  metadata.Topic
	lead   metadata.Leadership
	fence  metadata.ControllerFence
}

func newSweepEnv(t *testing.T) (*sweepEnv, context.Context) {
	t.Helper()
	_, cli := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	e := &sweepEnv{store: metadata.New(cli, "sweep"), cli: cli, bucket: objstore.NewMem()}
	var err error
	if e.topic, err = e.store.CreateTopic(ctx, metadata.Topic{Name: "orders", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	l, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if e.lead, err = e.store.AcquireLeadership(ctx, e.topic, 0, 1, l.ID); err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("%s/%x", e.store.ControllerPrefix(), l.ID)
	r, err := cli.Put(ctx, key, "1", clientv3.WithLease(l.ID))
	if err != nil {
		t.Fatal(err)
	}
	e.fence = metadata.ControllerFence{Key: key, Rev: r.Header.Revision}
	return e, ctx
}

// put uploads an object and, with commit, its manifest entry.
func (e *sweepEnv) put(t *testing.T, ctx context.Context, key string, base, last int64, commit bool) metadata.SegmentEntry {
	t.Helper()
	if err := e.bucket.Put(ctx, key, []byte("data of "+key)); err != nil {
		t.Fatal(err)
	}
	entry := metadata.SegmentEntry{Key: key, BaseOffset: base, LastOffset: last, Records: 1, Size: 1, RawSize: 1, Epoch: 1}
	if commit {
		if err := e.store.CommitSegment(ctx, e.lead, entry); err != nil {
			t.Fatal(err)
		}
	}
	return entry
}

func (e *sweepEnv) keys(t *testing.T, ctx context.Context) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := e.bucket.List(ctx, "", func(o objstore.ObjectInfo) error { out[o.Key] = true; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSweeper: garbage goes only once its grace has passed, and then with
// its record; orphans (no manifest entry, older than the grace) go;
// everything referenced, young or pending stays; a pass deletes at most
// MaxDeletes objects.
func TestSweeper(t *testing.T) {
	e, ctx := newSweepEnv(t)
	id := e.topic.ID
	a := e.put(t, ctx, tiering.ObjectKey("orders", id, 0, 0, 9, 1), 0, 9, true)
	b := e.put(t, ctx, tiering.ObjectKey("orders", id, 0, 10, 19, 1), 10, 19, true)
	c := e.put(t, ctx, tiering.ObjectKey("orders", id, 0, 20, 29, 1), 20, 29, true)
	// Compaction replaced a and b by ab; an output PUT whose commit never
	// came (a crash) is an orphan.
	ab := e.put(t, ctx, tiering.CompactedObjectKey("orders", id, 0, 0, 19, 1, 1), 0, 19, false)
	orphan := e.put(t, ctx, tiering.CompactedObjectKey("orders", id, 0, 0, 29, 1, 2), 0, 29, false).Key
	if err := e.store.ChangeManifest(ctx, e.lead, metadata.ManifestChange{Remove: []metadata.SegmentEntry{a, b}, Add: []metadata.SegmentEntry{ab},
		Garbage: []string{a.Key, b.Key}, Reason: "compaction"}); err != nil {
		t.Fatal(err)
	}
	snapshot := tiering.SnapshotKey("orders", id, 0)
	_ = e.bucket.Put(ctx, snapshot, []byte("{}"))
	stranger := "backups/not-ours.tar"
	_ = e.bucket.Put(ctx, stranger, []byte("x"))
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	clock := time.Now()
	sw := NewSweeper(SweeperConfig{Store: e.bucket, Meta: e.store, Grace: time.Minute, Now: func() time.Time { return clock }, Logger: logger})

	// Within the grace period nothing goes: readers of the old manifest
	// still read a and b, and the orphan may yet be committed.
	st, err := sw.Sweep(ctx, e.fence)
	if err != nil || st != (SweepStats{}) {
		t.Fatalf("sweep within the grace period: %+v %v", st, err)
	}
	if len(e.keys(t, ctx)) != 7 {
		t.Fatalf("objects deleted within the grace period: %v", e.keys(t, ctx))
	}
	clock = clock.Add(2 * time.Minute)
	st, err = sw.Sweep(ctx, e.fence)
	if err != nil {
		t.Fatal(err)
	}
	if st.GarbageObjects != 2 || st.GarbageRecords != 1 || st.Orphans != 1 {
		t.Fatalf("sweep after the grace period: %+v", st)
	}
	want := map[string]bool{ab.Key: true, c.Key: true, snapshot: true, stranger: true}
	if got := e.keys(t, ctx); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bucket after the sweep: %v, want %v (orphan %s)", got, want, orphan)
	}
	if gs, _ := e.store.ListGarbage(ctx, 0); len(gs) != 0 {
		t.Fatalf("garbage records left: %+v", gs)
	}
	// A deleted topic's objects are orphans, at most MaxDeletes a pass.
	for i := range int64(5) {
		e.put(t, ctx, tiering.ObjectKey("orders", id, 0, 30+i, 30+i, 1), 30+i, 30+i, true)
	}
	if _, err := e.store.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	sw = NewSweeper(SweeperConfig{Store: e.bucket, Meta: e.store, Grace: time.Minute, MaxDeletes: 3, Now: func() time.Time { return clock.Add(time.Hour) }, Logger: logger})
	for pass, want := range []struct{ deleted, left int }{{3, 5}, {3, 2}, {2, 0}} { // the topic's 8 objects, 3 per pass
		st, err := sw.Sweep(ctx, e.fence)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(e.keys(t, ctx)) - 1; got != want.left || st.Orphans != want.deleted {
			t.Fatalf("pass %d: deleted %d (%+v), %d left; want %d deleted, %d left", pass, st.Orphans, st, got, want.deleted, want.left)
		}
	}
	if got := e.keys(t, ctx); len(got) != 1 || !got[stranger] {
		t.Fatalf("after the deleted topic's sweep: %v", got)
	}
}

// TestSweeperIsFenced: a deposed controller deletes no garbage record.
func TestSweeperIsFenced(t *testing.T) {
	e, ctx := newSweepEnv(t)
	a := e.put(t, ctx, tiering.ObjectKey("orders", e.topic.ID, 0, 0, 9, 1), 0, 9, true)
	if err := e.store.ChangeManifest(ctx, e.lead, metadata.ManifestChange{Remove: []metadata.SegmentEntry{a}, Garbage: []string{a.Key}}); err != nil {
		t.Fatal(err)
	}
	sw := NewSweeper(SweeperConfig{Store: e.bucket, Meta: e.store, Grace: time.Minute, Now: func() time.Time { return time.Now().Add(time.Hour) }})
	stale := e.fence
	stale.Rev++
	if _, err := sw.Sweep(ctx, stale); err == nil {
		t.Fatal("a deposed controller's sweep succeeded")
	}
	if gs, _ := e.store.ListGarbage(ctx, 0); len(gs) != 1 {
		t.Fatalf("garbage records after a fenced sweep: %+v", gs)
	}
}

// listHook is a bucket whose List calls hook before handing each object
// on, and counts the objects it handed on.
type listHook struct {
	*objstore.Mem
	hook   func(objstore.ObjectInfo)
	listed int
}

func (l *listHook) List(ctx context.Context, prefix string, fn func(objstore.ObjectInfo) error) error {
	return l.Mem.List(ctx, prefix, func(o objstore.ObjectInfo) error {
		if l.hook != nil {
			l.hook(o)
		}
		l.listed++
		return fn(o)
	})
}

// TestSweeperOrphanPassIsBounded: a pass holds at most MaxDeletes orphan
// candidates and stops listing once it has them (a bucket of millions
// of objects is not held in memory), and an object whose commit lands
// while the bucket is listed is not taken for an orphan.
func TestSweeperOrphanPassIsBounded(t *testing.T) {
	e, ctx := newSweepEnv(t)
	id := e.topic.ID
	for i := range int64(20) { // referenced
		e.put(t, ctx, tiering.ObjectKey("orders", id, 0, i*10, i*10+9, 1), i*10, i*10+9, true)
	}
	late := e.put(t, ctx, tiering.CompactedObjectKey("orders", id, 0, 200, 209, 1, 1), 200, 209, false) // committed during the listing
	for i := range int64(30) {                                                                          // orphans, listed after it
		e.put(t, ctx, tiering.CompactedObjectKey("orders", id, 0, 300+i, 300+i, 1, 2), 300+i, 300+i, false)
	}
	bucket := &listHook{Mem: e.bucket}
	bucket.hook = func(o objstore.ObjectInfo) {
		if o.Key == late.Key {
			if err := e.store.CommitSegment(ctx, e.lead, late); err != nil {
				t.Error(err)
			}
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	sw := NewSweeper(SweeperConfig{Store: bucket, Meta: e.store, Grace: time.Minute, MaxDeletes: 5,
		Now: func() time.Time { return time.Now().Add(time.Hour) }, Logger: logger})
	st, err := sw.Sweep(ctx, e.fence)
	if err != nil {
		t.Fatal(err)
	}
	if st.Orphans != 4 { // 5 candidates (MaxDeletes), one of them committed meanwhile
		t.Fatalf("deleted %d orphans, want 4", st.Orphans)
	}
	if bucket.listed > 20+1+5 {
		t.Fatalf("the pass listed %d objects to find its 5 orphans, want at most %d", bucket.listed, 20+1+5)
	}
	if !e.keys(t, ctx)[late.Key] {
		t.Fatalf("%s, committed while the bucket was listed, was deleted as an orphan", late.Key)
	}
	for range 10 {
		if _, err := sw.Sweep(ctx, e.fence); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(e.keys(t, ctx)); got != 21 {
		t.Fatalf("%d objects left after the orphans went, want the 21 referenced", got)
	}
}
