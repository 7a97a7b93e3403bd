package segment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testBatch builds a batch of n records whose values identify (id, record).
func testBatch(id, n, valueSize int, ts int64) []byte {
	recs := make([]Record, n)
	for i := range recs {
		v := bytes.Repeat([]byte{byte(id + i)}, valueSize)
		copy(v, fmt.Sprintf("b%d-r%d|", id, i))
		recs[i] = Record{Timestamp: ts, Key: []byte(fmt.Sprintf("k%d", i)), Value: v}
	}
	return AppendBatch(nil, NoProducer, recs)
}

func openTest(t *testing.T, cfg Config) *Log {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	l, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// readAllBatches reads the whole readable log and returns its batches.
func readAllBatches(t *testing.T, l *Log) [][]byte {
	t.Helper()
	start, end := l.Offsets()
	var out [][]byte
	for off := start; off < end; {
		res, err := l.Read(off, 64<<10)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if res.Next <= off {
			t.Fatalf("Read(%d) made no progress: %+v", off, res)
		}
		if err := ForEachBatch(res.Batches, func(h BatchHeader, b []byte) error {
			out = append(out, append([]byte(nil), b...))
			return nil
		}); err != nil {
			t.Fatalf("Read(%d) returned an invalid batch: %v", off, err)
		}
		off = res.Next
	}
	return out
}

func TestAppendAssignsOffsetsAndReadsBack(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir(), SegmentBytes: 8 << 10, SyncPolicy: SyncAlways})
	var want [][]byte
	next := int64(0)
	for i := range 50 {
		b := testBatch(i, 1+i%4, 300, int64(1000+i))
		first, last, err := l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		if first != next || last != next+int64(1+i%4)-1 {
			t.Fatalf("batch %d: offsets [%d,%d], want first %d", i, first, last, next)
		}
		next = last + 1
		if err := l.WaitDurable(context.Background(), next); err != nil {
			t.Fatal(err)
		}
		want = append(want, b)
	}
	if segs := l.Segments(); len(segs) < 3 {
		t.Fatalf("expected rolls by size, got %d segments", len(segs))
	}
	got := readAllBatches(t, l)
	if len(got) != len(want) {
		t.Fatalf("read %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	// Reading from an offset inside a batch returns that batch first.
	for off := int64(0); off < next; off++ {
		res, err := l.Read(off, 1)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ValidateBatch(res.Batches)
		if err != nil || h.BaseOffset > off || h.LastOffset() < off || h.Size() != len(res.Batches) {
			t.Fatalf("Read(%d) = batch [%d,%d] (%v), size %d/%d", off, h.BaseOffset, h.LastOffset(), err, h.Size(), len(res.Batches))
		}
	}
	if _, err := l.Read(next+1, 100); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read past end: %v, want ErrOutOfRange", err)
	}
	if res, err := l.Read(next, 100); err != nil || len(res.Batches) != 0 {
		t.Fatalf("read at end: %v %d bytes, want empty", err, len(res.Batches))
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	recs := []Record{
		{Timestamp: 10, Key: []byte("a"), Value: []byte("1"), Headers: []RecordHeader{{Key: "h", Value: []byte("x")}}},
		{Timestamp: 12, Key: nil, Value: nil},
		{Timestamp: 11, Key: []byte{}, Value: bytes.Repeat([]byte("z"), 1000)},
	}
	b := AppendBatch(nil, BatchOptions{ProducerID: 7, ProducerEpoch: 1, BaseSequence: 40}, recs)
	SetBaseOffset(b, 500)
	h, err := ValidateBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.ProducerID != 7 || h.FirstSequence != 40 || h.FirstTimestamp != 10 || h.MaxTimestamp != 12 || h.NumRecords != 3 {
		t.Fatalf("header %+v", h)
	}
	var got []Record
	if err := BatchRecords(b, func(r Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		w := recs[i]
		if r.Offset != 500+int64(i) || r.Timestamp != w.Timestamp || !bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) ||
			!bytes.Equal(r.Value, w.Value) || (r.Value == nil) != (w.Value == nil) || len(r.Headers) != len(w.Headers) {
			t.Fatalf("record %d: %+v, want %+v", i, r, w)
		}
	}
}

func TestRollByAge(t *testing.T) {
	now := time.Unix(1000, 0)
	l := openTest(t, Config{Dir: t.TempDir(), SegmentAge: time.Minute, Now: func() time.Time { return now }, SyncPolicy: SyncNever})
	if _, _, err := l.Append(testBatch(0, 1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(59 * time.Second)
	if rolled, err := l.MaybeRoll(); err != nil || rolled {
		t.Fatalf("MaybeRoll before the age: %v %v", rolled, err)
	}
	if _, _, err := l.Append(testBatch(1, 1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("%d segments before the age", n)
	}
	now = now.Add(time.Second)
	if _, _, err := l.Append(testBatch(2, 1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	if segs := l.Segments(); len(segs) != 2 || segs[1].BaseOffset != 2 {
		t.Fatalf("segments after the age: %+v", segs)
	}
	now = now.Add(time.Minute)
	if rolled, err := l.MaybeRoll(); err != nil || !rolled {
		t.Fatalf("MaybeRoll after the age: %v %v", rolled, err)
	}
	if segs := l.Segments(); len(segs) != 3 || segs[2].BaseOffset != 3 || !segs[2].Active || segs[1].Active {
		t.Fatalf("segments after MaybeRoll: %+v", segs)
	}
}

func TestOffsetForTimestamp(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir(), SegmentBytes: 4 << 10, IndexIntervalBytes: 512, SyncPolicy: SyncNever})
	for i := range 100 {
		if _, _, err := l.Append(testBatch(i, 2, 100, int64(i*10))); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		ts   int64
		want int64
		ok   bool
	}{{-5, 0, true}, {0, 0, true}, {1, 2, true}, {10, 2, true}, {555, 112, true}, {990, 198, true}, {991, 0, false}} {
		got, ok, err := l.OffsetForTimestamp(tc.ts)
		if err != nil || ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("OffsetForTimestamp(%d) = %d %v %v, want %d %v", tc.ts, got, ok, err, tc.want, tc.ok)
		}
	}
}

func TestReopenKeepsEverythingAndRebuildsIndexes(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 16 << 10, IndexIntervalBytes: 1024, SyncPolicy: SyncInterval, Logger: quiet}
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for i := range 80 {
		b := testBatch(i, 3, 200, int64(i))
		if _, _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		want = append(want, b)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(name string) {
		t.Helper()
		l, err := Open(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer l.Close()
		got := readAllBatches(t, l)
		if len(got) != len(want) {
			t.Fatalf("%s: %d batches, want %d", name, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: batch %d differs", name, i)
			}
		}
		if off, ok, _ := l.OffsetForTimestamp(40); !ok || off != 120 {
			t.Fatalf("%s: OffsetForTimestamp(40) = %d %v", name, off, ok)
		}
		if _, _, err := l.Append(testBatch(99, 1, 10, 99)); err != nil {
			t.Fatalf("%s: append after reopen: %v", name, err)
		}
		want = append(want, testBatch(99, 1, 10, 99))
		SetBaseOffset(want[len(want)-1], l.WrittenOffset()-1)
	}
	check("clean reopen")

	idx, _ := filepath.Glob(filepath.Join(dir, "*.index"))
	tidx, _ := filepath.Glob(filepath.Join(dir, "*.timeindex"))
	if len(idx) < 3 || len(tidx) != len(idx) {
		t.Fatalf("index files: %v %v", idx, tidx)
	}
	os.Remove(idx[0])
	os.WriteFile(tidx[1], []byte("garbage that is not an index"), 0o644)
	b, _ := os.ReadFile(idx[2])
	for i := range b {
		b[i] = 0xff
	}
	os.WriteFile(idx[2], b, 0o644)
	check("damaged indexes")
	b2, _ := os.ReadFile(idx[2])
	if len(b2) == 0 || bytes.Equal(b, b2) {
		t.Fatalf("index %s was not rebuilt", idx[2])
	}
}

func TestTornTailIsCut(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SyncPolicy: SyncNever, Logger: quiet}
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, _, err := l.Append(testBatch(i, 2, 100, 1)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	path := filepath.Join(dir, SegmentFileName(0))
	data, _ := os.ReadFile(path)
	full := len(data)
	// Half a batch at the end, as a crash mid-write leaves it.
	extra := testBatch(10, 2, 100, 1)
	SetBaseOffset(extra, 20)
	os.WriteFile(path, append(data, extra[:len(extra)/2]...), 0o644)
	l2 := openTest(t, cfg)
	if _, end := l2.Offsets(); end != 20 {
		t.Fatalf("end after torn tail = %d, want 20", end)
	}
	if st, _ := os.Stat(path); st.Size() != int64(full) {
		t.Fatalf("file is %d bytes after recovery, want %d", st.Size(), full)
	}
	if first, _, err := l2.Append(testBatch(11, 1, 10, 1)); err != nil || first != 20 {
		t.Fatalf("append after recovery: %d %v", first, err)
	}
}

func TestCorruptBatchIsNeverServed(t *testing.T) {
	fsys := NewMemFS()
	cfg := Config{Dir: "/log", FS: fsys, SegmentBytes: 8 << 10, IndexIntervalBytes: 1024, SyncPolicy: SyncAlways, Logger: quiet}
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if _, _, err := l.Append(testBatch(i, 2, 150, 1)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	// Flip one byte in the middle of the first (sealed) segment: recovery
	// only checks from the last index entry, so the read must catch it.
	name := "/log/" + SegmentFileName(0)
	data, _ := fsys.ReadFile(name)
	data[len(data)/3] ^= 0x01
	fsys.WriteFile(name, data)
	l2 := openTest(t, cfg)
	sawCorrupt := false
	_, end := l2.Offsets()
	for off := int64(0); off < end; off++ {
		res, err := l2.Read(off, 1<<20)
		if errors.Is(err, ErrCorrupt) {
			sawCorrupt = true
			continue
		}
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if err := ForEachBatch(res.Batches, func(BatchHeader, []byte) error { return nil }); err != nil {
			t.Fatalf("Read(%d) served a bad batch: %v", off, err)
		}
	}
	if !sawCorrupt {
		t.Fatal("no read reported the corrupt batch")
	}
}

func TestGroupCommit(t *testing.T) {
	fsys := NewMemFS()
	fsys.SetSyncDelay(time.Millisecond)
	var observed struct {
		sync.Mutex
		n   int
		min time.Duration
	}
	onSync := func(d time.Duration) {
		observed.Lock()
		defer observed.Unlock()
		if observed.n == 0 || d < observed.min {
			observed.min = d
		}
		observed.n++
	}
	l := openTest(t, Config{Dir: "/g", FS: fsys, SyncPolicy: SyncAlways, OnSync: onSync})
	const writers, each = 16, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, last, err := l.Append(testBatch(w*each+i, 1, 64, 1))
				if err == nil {
					err = l.WaitDurable(context.Background(), last+1)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	syncs := fsys.Syncs()
	t.Logf("%d durable appends took %d fsyncs", writers*each, syncs)
	observed.Lock()
	// Every durable append waited for a syncer fsync that OnSync saw, each
	// at least the FS's delay; Syncs also counts the seal's and Open's.
	if observed.n == 0 || observed.n > syncs || observed.min < time.Millisecond {
		t.Errorf("OnSync saw %d fsyncs (of %d), the shortest %v; want 1..%d of at least 1ms", observed.n, syncs, observed.min, syncs)
	}
	observed.Unlock()
	if syncs > writers*each/4 {
		t.Fatalf("%d fsyncs for %d appends: no group commit", syncs, writers*each)
	}
	if _, end := l.Offsets(); end != writers*each {
		t.Fatalf("end %d", end)
	}
}

func TestConcurrentReadersSeeEveryBatch(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			l := openTest(t, Config{Dir: t.TempDir(), SegmentBytes: 16 << 10, SyncPolicy: policy})
			const total = 400
			var wg sync.WaitGroup
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for r := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					off := int64(0)
					for off < total {
						if err := l.WaitFor(ctx, off); err != nil {
							t.Errorf("reader %d: WaitFor(%d): %v", r, off, err)
							return
						}
						res, err := l.Read(off, 4<<10)
						if err != nil {
							t.Errorf("reader %d: Read(%d): %v", r, off, err)
							return
						}
						err = ForEachBatch(res.Batches, func(h BatchHeader, b []byte) error {
							return BatchRecords(b, func(rec Record) error {
								if want := fmt.Sprintf("b%d-r0|", rec.Offset); rec.Offset >= off && !bytes.HasPrefix(rec.Value, []byte(want)) {
									return fmt.Errorf("offset %d holds %q", rec.Offset, rec.Value[:8])
								}
								return nil
							})
						})
						if err != nil {
							t.Errorf("reader %d: %v", r, err)
							return
						}
						off = res.Next
					}
				}()
			}
			for i := range total {
				_, last, err := l.Append(testBatch(i, 1, 200, 1))
				if err != nil {
					t.Fatal(err)
				}
				if i%7 == 0 {
					if err := l.WaitDurable(ctx, last+1); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := l.Sync(ctx, total); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
		})
	}
}

func TestRemoveSegmentsBefore(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir(), SegmentBytes: 2 << 10, SyncPolicy: SyncNever})
	for i := range 40 {
		if _, _, err := l.Append(testBatch(i, 1, 200, 1)); err != nil {
			t.Fatal(err)
		}
	}
	segs := l.Segments()
	cut := segs[3].BaseOffset
	n, err := l.RemoveSegmentsBefore(cut + 1)
	if err != nil || n != 3 {
		t.Fatalf("removed %d (%v), want 3", n, err)
	}
	if start, _ := l.Offsets(); start != cut {
		t.Fatalf("start %d, want %d", start, cut)
	}
	if _, err := l.Read(cut-1, 100); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	if _, err := os.Stat(segs[0].Path); !os.IsNotExist(err) {
		t.Fatalf("segment file still there: %v", err)
	}
	if _, err := l.ReadSegment(cut); err != nil {
		t.Fatal(err)
	}
}

func TestAppendRejectsBadBatches(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir(), SegmentBytes: 4 << 10})
	good := testBatch(0, 1, 10, 1)
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-1] ^= 1
	for name, b := range map[string][]byte{
		"empty":    nil,
		"short":    good[:30],
		"crc":      flipped,
		"trailing": append(append([]byte(nil), good...), 0),
		"huge":     testBatch(1, 1, 8<<10, 1),
	} {
		if _, _, err := l.Append(b); err == nil {
			t.Errorf("%s: Append accepted a bad batch", name)
		}
	}
	if _, end := l.Offsets(); end != 0 {
		t.Fatalf("bad batches moved the end to %d", end)
	}
}

// TestAppendChecked: CheckBatch cuts the first batch off the bytes given
// (rejecting a corrupt one), AppendChecked writes it as Append would, and
// a CheckedBatch that did not come from CheckBatch writes nothing.
func TestAppendChecked(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir(), SegmentBytes: 1 << 20})
	a, b := testBatch(0, 3, 10, 1), testBatch(1, 2, 10, 2)
	two := append(append([]byte(nil), a...), b...)
	c, err := CheckBatch(two)
	if err != nil || !bytes.Equal(c.Bytes(), a) || c.Header().LastOffsetDelta != 2 {
		t.Fatalf("CheckBatch of two batches: %v, %d bytes, want the first (%d bytes)", err, len(c.Bytes()), len(a))
	}
	flipped := append([]byte(nil), b...)
	flipped[len(flipped)-1] ^= 1
	if _, err := CheckBatch(flipped); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("CheckBatch of a corrupt batch: %v, want ErrCorrupt", err)
	}
	if _, _, err := l.AppendChecked(CheckedBatch{}); err == nil {
		t.Fatal("AppendChecked wrote a zero CheckedBatch")
	}
	if first, last, err := l.AppendChecked(c); err != nil || first != 0 || last != 2 {
		t.Fatalf("AppendChecked: %d-%d, %v; want 0-2", first, last, err)
	}
	if first, last, err := l.Append(b); err != nil || first != 3 || last != 4 {
		t.Fatalf("Append after it: %d-%d, %v; want 3-4", first, last, err)
	}
	if err := l.Sync(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	got := readAllBatches(t, l)
	if len(got) != 2 || !bytes.Equal(got[0][attrsPos:], a[attrsPos:]) || !bytes.Equal(got[1][attrsPos:], b[attrsPos:]) {
		t.Fatalf("read back %d batches, not the two appended", len(got))
	}
}

func TestSyncAlwaysPublishesWithoutWaiters(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir(), SyncPolicy: SyncAlways})
	if _, _, err := l.Append(testBatch(0, 1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.WaitFor(ctx, 0); err != nil {
		t.Fatalf("an append nobody waited for never became readable: %v", err)
	}
}

// TestSyncOnDemand: with SyncOnDemand, appends cost no fsync of their own
// (only the background one, every SyncInterval: an hour here) and are
// readable at once; WaitDurable still fsyncs.
func TestSyncOnDemand(t *testing.T) {
	fsys := NewMemFS()
	l := openTest(t, Config{Dir: "/log", FS: fsys, SyncPolicy: SyncAlways, SyncOnDemand: true, SyncInterval: time.Hour, Logger: quiet})
	defer l.Close()
	before := fsys.Syncs()
	for i := range 20 {
		if _, _, err := l.Append(testBatch(i, 1, 10, 1)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // time for a sync loop that should not run
	if n := fsys.Syncs() - before; n != 0 {
		t.Fatalf("%d fsyncs for appends nobody waits on", n)
	}
	if _, end := l.Offsets(); end != 20 {
		t.Fatalf("readable end %d, want 20 (written, not yet synced)", end)
	}
	if res, err := l.Read(0, 1<<20); err != nil || res.Next != 20 {
		t.Fatalf("Read: next %d, %v", res.Next, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.WaitDurable(ctx, 20); err != nil {
		t.Fatal(err)
	}
	if n := fsys.Syncs() - before; n < 1 {
		t.Fatal("WaitDurable returned without an fsync")
	}
}

// TestReopenSyncsTheTail: what a crashed process left written but not
// fsynced is fsynced when the log reopens, before it counts as synced: a
// WaitDurable answered from it then holds through a machine crash.
func TestReopenSyncsTheTail(t *testing.T) {
	fsys := NewMemFS()
	cfg := Config{Dir: "/log", FS: fsys, SyncPolicy: SyncAlways, SyncOnDemand: true, SyncInterval: time.Hour, Logger: quiet}
	l1, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, _, err := l1.Append(testBatch(i, 1, 10, 1)); err != nil {
			t.Fatal(err)
		}
	}
	// The process dies: l1 is abandoned, its writes are in the page cache.
	l2 := openTest(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l2.WaitDurable(ctx, 5); err != nil {
		t.Fatal(err)
	}
	// Then the machine crashes.
	l3 := openTest(t, Config{Dir: "/log", FS: fsys.Crash(CrashOptions{}), SyncPolicy: SyncAlways, Logger: quiet})
	if _, end := l3.Offsets(); end != 5 {
		t.Fatalf("after a machine crash the log ends at %d, though WaitDurable(5) returned", end)
	}
}

// TestBatchesWalksHeaders: Batches yields every whole batch in order and
// stops at a torn one.
func TestBatchesWalksHeaders(t *testing.T) {
	var b []byte
	for i := range 3 {
		one := testBatch(i, 2, 10, 1)
		SetBaseOffset(one, int64(2*i))
		b = append(b, one...)
	}
	var bases []int64
	for h, raw := range Batches(b[:len(b)-5]) {
		if len(raw) != h.Size() {
			t.Fatalf("batch at %d: %d bytes, header says %d", h.BaseOffset, len(raw), h.Size())
		}
		bases = append(bases, h.BaseOffset)
	}
	if len(bases) != 2 || bases[0] != 0 || bases[1] != 2 {
		t.Fatalf("bases %v, want [0 2] (the torn third batch left out)", bases)
	}
}

// TestRollDoesNotWaitForFsync: the roll of a full segment leaves its
// fsyncs to the syncer, so the append that rolls does not wait for them;
// the rolled segment counts as unsealed (Active) until its seal is done,
// and a batch of the new segment is durable only once everything before
// it is - a crash right after Sync returns keeps all of it.
func TestRollDoesNotWaitForFsync(t *testing.T) {
	fsys := NewMemFS()
	cfg := Config{Dir: "/p", FS: fsys, SegmentBytes: 4 << 10, SyncPolicy: SyncAlways, Logger: quiet}
	l := openTest(t, cfg)
	var n int
	for len(l.Segments()) == 1 {
		if _, _, err := l.Append(testBatch(n, 4, 100, 1)); err != nil {
			t.Fatal(err)
		}
		n++
	}
	for deadline := time.Now().Add(5 * time.Second); l.Segments()[0].Active; {
		if time.Now().After(deadline) {
			t.Fatal("the first rolled segment was not sealed within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	// Each fsync takes 300 ms from now on: the append that rolls the
	// second segment must not wait for one.
	fsys.SetSyncDelay(300 * time.Millisecond)
	start := time.Now()
	for segs := len(l.Segments()); len(l.Segments()) == segs; n++ {
		if _, _, err := l.Append(testBatch(n, 4, 100, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Fatalf("appends across a roll took %s with 300 ms fsyncs", d)
	}
	segs := l.Segments()
	if !segs[len(segs)-2].Active {
		t.Fatalf("the segment just rolled reads as sealed before its fsync: %+v", segs)
	}
	if _, err := l.ReadSegment(segs[len(segs)-2].BaseOffset); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("ReadSegment of the unsealed segment: %v, want ErrOutOfRange", err)
	}
	written := l.WrittenOffset()
	if _, end := l.Offsets(); end >= written {
		t.Fatalf("readable end %d already at the written end %d under 300 ms fsyncs", end, written)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Sync(ctx, written); err != nil {
		t.Fatal(err)
	}
	// Durable up to written: a crash now loses nothing, and the rolled
	// segment's directory entry survived too.
	cfg.FS = fsys.Crash(CrashOptions{})
	l2 := openTest(t, cfg)
	if _, end := l2.Offsets(); end != written {
		t.Fatalf("after Sync(%d) and a crash the log ends at %d", written, end)
	}
	if got := len(l2.Segments()); got != len(segs) {
		t.Fatalf("after a crash %d segments, want %d", got, len(segs))
	}
}

// TestRecoveryDropsSegmentsAfterAGap: a crash during a seal can cut the
// rolled segment's tail while write-back kept part of its successor. The
// successor (and anything later) cannot follow in order: recovery drops
// it, and appends continue where the cut segment ends.
func TestRecoveryDropsSegmentsAfterAGap(t *testing.T) {
	fsys := NewMemFS()
	cfg := Config{Dir: "/p", FS: fsys, SegmentBytes: 2 << 10, SyncPolicy: SyncNever, Logger: quiet}
	l := openTest(t, cfg)
	for i := 0; len(l.Segments()) < 3; i++ {
		if _, _, err := l.Append(testBatch(i, 2, 100, 1)); err != nil {
			t.Fatal(err)
		}
	}
	segs := l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Cut the middle segment's last batch.
	mid := segs[1]
	data, err := fsys.ReadFile(mid.Path)
	if err != nil {
		t.Fatal(err)
	}
	var cut int
	if err := ForEachBatch(data, func(h BatchHeader, b []byte) error {
		if h.NextOffset() < mid.NextOffset {
			cut += len(b)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fsys.WriteFile(mid.Path, data[:cut+10]) // a torn batch after the cut
	l2 := openTest(t, cfg)
	got := l2.Segments()
	if len(got) != 2 || got[1].BaseOffset != mid.BaseOffset || got[1].NextOffset >= mid.NextOffset {
		t.Fatalf("segments after recovery: %+v (the middle one was %+v)", got, mid)
	}
	if _, err := fsys.ReadFile(segs[2].Path); err == nil {
		t.Fatalf("segment %s after the gap is still there", segs[2].Path)
	}
	first, _, err := l2.Append(testBatch(99, 1, 10, 1))
	if err != nil || first != got[1].NextOffset {
		t.Fatalf("append after recovery at %d (%v), want %d", first, err, got[1].NextOffset)
	}
}

// TestReadSegmentInto: with a large enough buffer the sealed segment is
// read into it (no new memory), with the bytes ReadSegment returns.
func TestReadSegmentInto(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir(), SegmentBytes: 4 << 10, SyncPolicy: SyncNever})
	for i := 0; len(l.Segments()) < 3; i++ {
		if _, _, err := l.Append(testBatch(i, 2, 100, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	base := l.Segments()[0].BaseOffset
	want, err := l.ReadSegment(base)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 64<<10)
	got, err := l.ReadSegmentInto(buf, base)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadSegmentInto: %d bytes (%v), want the %d of ReadSegment", len(got), err, len(want))
	}
	if &got[0] != &buf[:1][0] {
		t.Fatal("ReadSegmentInto did not read into the buffer it was given")
	}
	small, err := l.ReadSegmentInto(make([]byte, 10), base)
	if err != nil || !bytes.Equal(small, want) {
		t.Fatalf("ReadSegmentInto with a small buffer: %d bytes (%v)", len(small), err)
	}
}
