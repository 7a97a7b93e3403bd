package compaction

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering"
	"github.com/strata-stream/strata/tiering/objstore"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// rec is one record as produced: nil value is a tombstone.
type rec struct {
	key, value []byte
	ts         int64
}

// uploadLog writes recs as a partition's uploaded segments of batchSize
// records per batch and batchesPerSeg batches per segment, and returns
// the manifest.
func uploadLog(t testing.TB, store objstore.Store, recs []rec, batchSize, batchesPerSeg int) []metadata.SegmentEntry {
	t.Helper()
	return uploadLogAt(t, store, 0, recs, batchSize, batchesPerSeg)
}

// uploadLogAt is uploadLog with the first record at offset base.
func uploadLogAt(t testing.TB, store objstore.Store, base int64, recs []rec, batchSize, batchesPerSeg int) []metadata.SegmentEntry {
	t.Helper()
	var entries []metadata.SegmentEntry
	var seg []byte
	flush := func() {
		if len(seg) == 0 {
			return
		}
		obj, e, err := tiering.EncodeSegment(tiering.SegmentUpload{Topic: "t", TopicID: "id", Partition: 0, Epoch: 1, Batches: seg})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Put(context.Background(), e.Key, obj); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
		seg = nil
	}
	n := 0
	for off := 0; off < len(recs); off += batchSize {
		var rs []segment.Record
		for _, r := range recs[off:min(off+batchSize, len(recs))] {
			rs = append(rs, segment.Record{Timestamp: r.ts, Key: r.key, Value: r.value})
		}
		b := segment.AppendBatch(nil, segment.NoProducer, rs)
		segment.SetBaseOffset(b, base+int64(off))
		seg = append(seg, b...)
		if n++; n%batchesPerSeg == 0 {
			flush()
		}
	}
	flush()
	return entries
}

// manifest is a fake Committer: it applies swaps to an in-memory
// manifest, checking them as etcd would, and can fail after a number of
// swaps (a crash).
type manifest struct {
	entries  map[int64]metadata.SegmentEntry
	garbage  []string
	status   metadata.CompactionStatus
	swaps    int
	failFrom int // the swap (counting from 1) that fails; 0: none
}

var errCrash = errors.New("crash")

func newManifest(es []metadata.SegmentEntry) *manifest {
	m := &manifest{entries: map[int64]metadata.SegmentEntry{}}
	for _, e := range es {
		m.entries[e.BaseOffset] = e
	}
	return m
}

func (m *manifest) Swap(_ context.Context, s Swap) error {
	if m.failFrom > 0 && m.swaps+1 >= m.failFrom {
		return errCrash
	}
	for _, e := range s.Inputs {
		if cur, ok := m.entries[e.BaseOffset]; !ok || cur.Key != e.Key {
			return fmt.Errorf("swap removes %s, not in the manifest", e.Key)
		}
	}
	for _, e := range s.Inputs {
		delete(m.entries, e.BaseOffset)
	}
	if s.Output != nil {
		m.entries[s.Output.BaseOffset] = *s.Output
	}
	m.garbage = append(m.garbage, s.Garbage...)
	if s.Status != nil {
		m.status = *s.Status
	}
	m.swaps++
	return nil
}

func (m *manifest) list() []metadata.SegmentEntry {
	out := make([]metadata.SegmentEntry, 0, len(m.entries))
	for _, e := range m.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].BaseOffset < out[j].BaseOffset })
	return out
}

// consumed is a record read back, at its offset.
type consumed struct {
	offset int64
	rec
}

// readLog reads every record of the manifest's objects, checking that
// entries do not overlap and match their objects.
func readLog(t testing.TB, store objstore.Store, es []metadata.SegmentEntry) []consumed {
	t.Helper()
	var out []consumed
	next := int64(-1)
	for _, e := range es {
		if e.BaseOffset <= next {
			t.Fatalf("entry %s overlaps the previous one (ending at %d)", e.Key, next)
		}
		obj, err := store.Get(context.Background(), e.Key)
		if err != nil {
			t.Fatalf("manifest entry %s: %v", e.Key, err)
		}
		f, batches, err := segment.DecodeObject(obj)
		if err != nil {
			t.Fatalf("%s: %v", e.Key, err)
		}
		if f.BaseOffset < e.BaseOffset || f.LastOffset != e.LastOffset || f.RawSize() != e.RawSize || int64(len(obj)) != e.Size || f.Records != e.Records {
			t.Fatalf("entry %+v does not match its object's footer %+v", e, f)
		}
		err = segment.ForEachBatch(batches, func(_ segment.BatchHeader, b []byte) error {
			return segment.BatchRecords(b, func(r segment.Record) error {
				out = append(out, consumed{r.Offset, rec{bytes.Clone(r.Key), bytes.Clone(r.Value), r.Timestamp}})
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		next = e.LastOffset
	}
	for i := 1; i < len(out); i++ {
		if out[i].offset <= out[i-1].offset {
			t.Fatalf("offset %d after %d", out[i].offset, out[i-1].offset)
		}
	}
	return out
}

// updates builds keys × rounds records: every key updated each round,
// with the keys in deleted tombstoned in the last round. Timestamps are
// ts0 + offset.
func updates(keys, rounds int, deleted func(k int) bool, ts0 int64) []rec {
	var out []rec
	for r := range rounds {
		for k := range keys {
			v := fmt.Appendf(nil, "key-%05d-round-%03d-%s", k, r, bytes.Repeat([]byte("v"), 40))
			if r == rounds-1 && deleted(k) {
				v = nil
			}
			out = append(out, rec{key: fmt.Appendf(nil, "key-%05d", k), value: v, ts: ts0 + int64(len(out))})
		}
	}
	return out
}

// latest returns each key's latest record and its offset.
func latest(recs []rec) map[string]consumed {
	out := map[string]consumed{}
	for i, r := range recs {
		out[string(r.key)] = consumed{int64(i), r}
	}
	return out
}

func cfgFor(now time.Time) Config {
	return Config{Topic: "t", TopicID: "id", Epoch: 2, Compact: true, SegmentBytes: 256 << 10,
		DeleteRetention: time.Hour, Now: func() time.Time { return now }, Logger: quiet}
}

// TestCompact: 500 keys each updated 20 times, 50 of them deleted: after
// a run the log holds exactly the latest record of every key at its
// original offset (tombstones included, within delete.retention.ms);
// after delete.retention.ms a second run drops the tombstones. Bytes and
// object count shrink; every replaced object is garbage.
func TestCompact(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMem()
	now := time.UnixMilli(1_800_000_000_000)
	deleted := func(k int) bool { return k%10 == 3 }
	recs := updates(500, 20, deleted, now.UnixMilli()-10_000)
	entries := uploadLog(t, store, recs, 50, 10)
	m := newManifest(entries)
	res, err := Run(ctx, cfgFor(now), entries, metadata.CompactionStatus{}, store, m)
	if err != nil {
		t.Fatal(err)
	}
	want := latest(recs)
	got := readLog(t, store, m.list())
	if len(got) != len(want) {
		t.Fatalf("%d records after compaction, want %d (one per key)", len(got), len(want))
	}
	for _, c := range got {
		w := want[string(c.key)]
		if w.offset != c.offset || !bytes.Equal(w.value, c.value) || (w.value == nil) != (c.value == nil) {
			t.Fatalf("key %s: offset %d value %q, want the latest: offset %d value %q", c.key, c.offset, c.value, w.offset, w.value)
		}
	}
	for i, e := range m.list() { // no gap: the dropped offsets stay the entries'
		if i == 0 && e.BaseOffset != 0 || i > 0 && e.BaseOffset != m.list()[i-1].LastOffset+1 {
			t.Fatalf("manifest after compaction has a gap: %+v", m.list())
		}
	}
	in, out := sumRaw(entries), sumRaw(m.list())
	t.Logf("%d objects, %d bytes → %d objects, %d bytes (%d swaps)", len(entries), in, len(m.list()), out, res.Swaps)
	if len(m.list()) >= len(entries) || out*10 > in {
		t.Fatalf("compaction did not shrink the log: %d objects, %d bytes → %d objects, %d bytes", len(entries), in, len(m.list()), out)
	}
	if len(m.garbage) != len(entries) {
		t.Fatalf("%d garbage keys, want the %d replaced objects", len(m.garbage), len(entries))
	}
	st := m.status
	if st.CleanedEnd != int64(len(recs)) || st.DirtyRatio != 0 || st.RecordsRemoved != int64(len(recs)-len(want)) || st.TombstonesRemoved != 0 ||
		st.ObjectsIn != int64(len(entries)) || st.ObjectsOut != int64(len(m.list())) || st.LastRunMs != now.UnixMilli() {
		t.Fatalf("status %+v", st)
	}
	// 50 tombstones, all waiting for their expiry.
	if st.KeptTombstones != 50 || st.OldestTombstoneMs != want["key-00003"].ts {
		t.Fatalf("kept %d tombstones, the oldest at %d; want 50, the oldest at %d", st.KeptTombstones, st.OldestTombstoneMs, want["key-00003"].ts)
	}
	if Due(m.list(), st, now, 0.5, time.Hour) {
		t.Fatal("a run is due right after one")
	}
	// delete.retention.ms later, the tombstones go, those of the log's
	// last batch too (its last record, key-00499, is live).
	later := time.UnixMilli(st.OldestTombstoneMs + time.Hour.Milliseconds() + 20_000)
	if !Due(m.list(), st, later, 0.5, time.Hour) {
		t.Fatal("no run due once the tombstones expire")
	}
	before := m.list()
	if _, err := Run(ctx, cfgFor(later), before, st, store, m); err != nil {
		t.Fatal(err)
	}
	got = readLog(t, store, m.list())
	for _, c := range got {
		if c.value == nil {
			t.Fatalf("tombstone of %s at %d survived delete.retention.ms", c.key, c.offset)
		}
	}
	live := 0
	for _, w := range want {
		if w.value != nil {
			live++
		}
	}
	if len(got) != live {
		t.Fatalf("%d records after the tombstones went, want %d", len(got), live)
	}
	if m.status.TombstonesRemoved != 50 || m.status.KeptTombstones != 0 {
		t.Fatalf("status after dropping tombstones: %+v", m.status)
	}
	if last := m.list()[len(m.list())-1].LastOffset; last != int64(len(recs)-1) {
		t.Fatalf("the uploaded end moved from %d to %d", len(recs)-1, last)
	}
}

// TestCompactDirtyOnly: a second batch of updates uploaded after a run
// is the dirty part; the next run supersedes the clean part's records
// with it and maps only it.
func TestCompactDirtyOnly(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMem()
	now := time.UnixMilli(1_800_000_000_000)
	recs := updates(100, 5, func(int) bool { return false }, now.UnixMilli())
	entries := uploadLog(t, store, recs, 20, 5)
	m := newManifest(entries)
	if _, err := Run(ctx, cfgFor(now), entries, metadata.CompactionStatus{}, store, m); err != nil {
		t.Fatal(err)
	}
	// 30 keys updated again, uploaded after the run.
	var more []rec
	for k := range 30 {
		more = append(more, rec{key: fmt.Appendf(nil, "key-%05d", k), value: fmt.Appendf(nil, "new-%d", k), ts: now.UnixMilli()})
	}
	all := append(append([]rec(nil), recs...), more...)
	extra := uploadLog(t, store, all, 10, 1)
	var added []metadata.SegmentEntry
	for _, e := range extra {
		if e.BaseOffset >= int64(len(recs)) {
			added = append(added, e)
			m.entries[e.BaseOffset] = e
		}
	}
	if r := DirtyRatio(m.list(), m.status.CleanedEnd); r <= 0 || r >= 1 {
		t.Fatalf("dirty ratio %f with %d new entries", r, len(added))
	}
	res, err := Run(ctx, cfgFor(now), m.list(), m.status, store, m)
	if err != nil {
		t.Fatal(err)
	}
	if res.BytesRead >= 2*sumRaw(m.list())+sumRaw(added) {
		t.Fatalf("read %d bytes", res.BytesRead)
	}
	got := readLog(t, store, m.list())
	want := latest(all)
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for _, c := range got {
		if w := want[string(c.key)]; w.offset != c.offset || !bytes.Equal(w.value, c.value) {
			t.Fatalf("key %s at %d = %q, want %q at %d", c.key, c.offset, c.value, w.value, w.offset)
		}
	}
}

// TestCompactCutShort: a run that stops after any number of swaps (a
// crash, a lost leadership) leaves a consistent log: every record at its
// original offset, every key's last record in the log its true latest
// (a deleted key's tombstone, or nothing), no older value resurrected;
// the garbage recorded is exactly what the swaps replaced.
func TestCompactCutShort(t *testing.T) {
	ctx := context.Background()
	now := time.UnixMilli(1_800_000_000_000)
	// Keys updated at random, some deleted (tombstones past their
	// retention) and perhaps written again: latest records everywhere.
	rnd := rand.New(rand.NewPCG(1, 2))
	var recs []rec
	for i := range 1600 {
		k := rnd.IntN(300)
		r := rec{key: fmt.Appendf(nil, "key-%05d", k), value: fmt.Appendf(nil, "value-%d-%s", i, bytes.Repeat([]byte("v"), 30)), ts: now.UnixMilli() - 2*time.Hour.Milliseconds()}
		if rnd.IntN(5) == 0 {
			r.value = nil
		}
		recs = append(recs, r)
	}
	want := latest(recs)
	for failFrom := 1; ; failFrom++ {
		store := objstore.NewMem()
		entries := uploadLog(t, store, recs, 25, 4)
		m := newManifest(entries)
		m.failFrom = failFrom
		cfg := cfgFor(now)
		cfg.SegmentBytes = 3 << 10 // several outputs
		_, err := Run(ctx, cfg, entries, metadata.CompactionStatus{}, store, m)
		if err != nil && !errors.Is(err, errCrash) {
			t.Fatal(err)
		}
		got := readLog(t, store, m.list())
		lastOf := map[string]consumed{}
		for _, c := range got {
			if orig := recs[c.offset]; !bytes.Equal(orig.key, c.key) || !bytes.Equal(orig.value, c.value) {
				t.Fatalf("cut after %d swaps: offset %d holds %s=%q, was %s=%q", failFrom-1, c.offset, c.key, c.value, orig.key, orig.value)
			}
			lastOf[string(c.key)] = c
		}
		for k, w := range want {
			c, ok := lastOf[k]
			switch {
			case !ok && w.value != nil:
				t.Fatalf("cut after %d swaps: live key %s is missing", failFrom-1, k)
			case ok && c.offset != w.offset:
				t.Fatalf("cut after %d swaps: key %s ends at offset %d (%q), its latest is at %d", failFrom-1, k, c.offset, c.value, w.offset)
			}
		}
		if err == nil {
			if failFrom < 6 {
				t.Fatalf("the run made only %d swaps", failFrom-1)
			}
			t.Logf("consistent when cut after each of %d swaps", failFrom-1)
			return
		}
	}
}

// TestMerge: a topic that is not compacted has its small segments merged
// (record bytes unchanged), its large ones left alone.
func TestMerge(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMem()
	recs := updates(40, 10, func(int) bool { return false }, 1000)
	entries := uploadLog(t, store, recs, 10, 1) // 40 tiny segments
	big := uploadLog(t, store, updates(400, 1, func(int) bool { return false }, 1000), 400, 1)
	_ = big
	m := newManifest(entries)
	cfg := cfgFor(time.Now())
	cfg.Compact = false
	cfg.SegmentBytes = 16 << 10
	before := readLog(t, store, entries)
	res, err := Run(ctx, cfg, entries, metadata.CompactionStatus{}, store, m)
	if err != nil {
		t.Fatal(err)
	}
	after := readLog(t, store, m.list())
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatal("merging changed the records")
	}
	if len(m.list()) >= len(entries)/2 || res.ObjectsIn != len(entries)-(len(m.list())-res.ObjectsOut) {
		t.Fatalf("%d segments merged into %d (%+v)", len(entries), len(m.list()), res)
	}
	for _, e := range m.list() {
		if e.RawSize > cfg.SegmentBytes {
			t.Fatalf("merged segment of %d bytes, above segment.bytes %d", e.RawSize, cfg.SegmentBytes)
		}
	}
	// Nothing left to merge: a second run changes nothing.
	n := len(m.list())
	if res, err := Run(ctx, cfg, m.list(), metadata.CompactionStatus{}, store, m); err != nil || res.Swaps != 0 || len(m.list()) != n {
		t.Fatalf("second merge: %+v %v", res, err)
	}
	t.Logf("%d segments of %d bytes merged into %d", len(entries), entries[0].RawSize, n)
}

// TestCompactProducerSnapshot: the last entry's producer snapshot moves
// to the output that replaces it.
func TestCompactProducerSnapshot(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMem()
	now := time.UnixMilli(1_800_000_000_000)
	recs := updates(50, 4, func(int) bool { return false }, now.UnixMilli())
	entries := uploadLog(t, store, recs, 10, 5)
	last := &entries[len(entries)-1]
	last.Producers = true
	snap := []byte(`{"version":1,"end":200,"producers":[]}`)
	if err := store.Put(ctx, tiering.ProducerSnapshotKey(last.Key), snap); err != nil {
		t.Fatal(err)
	}
	m := newManifest(entries)
	if _, err := Run(ctx, cfgFor(now), entries, metadata.CompactionStatus{}, store, m); err != nil {
		t.Fatal(err)
	}
	es := m.list()
	out := es[len(es)-1]
	if !out.Producers || out.Key == last.Key || out.LastOffset != last.LastOffset {
		t.Fatalf("the last entry after compaction: %+v", out)
	}
	got, err := store.Get(ctx, tiering.ProducerSnapshotKey(out.Key))
	if err != nil || !bytes.Equal(got, snap) {
		t.Fatalf("producer snapshot of the output: %q %v", got, err)
	}
	found := false
	for _, g := range m.garbage {
		found = found || g == tiering.ProducerSnapshotKey(last.Key)
	}
	if !found {
		t.Fatalf("the replaced producer snapshot is not garbage: %v", m.garbage)
	}
}

// TestCompactMapBound: with a small key map a run maps part of the dirty
// entries; the next run continues from where it stopped.
func TestCompactMapBound(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMem()
	now := time.UnixMilli(1_800_000_000_000)
	var recs []rec
	for i := range 2000 { // every key distinct: the map grows with every entry
		recs = append(recs, rec{key: fmt.Appendf(nil, "k%06d", i), value: []byte("v"), ts: now.UnixMilli()})
	}
	entries := uploadLog(t, store, recs, 100, 2)
	m := newManifest(entries)
	cfg := cfgFor(now)
	cfg.MaxMapBytes = 500 * (7 + mapOverhead)
	if _, err := Run(ctx, cfg, entries, metadata.CompactionStatus{}, store, m); err != nil {
		t.Fatal(err)
	}
	if ce := m.status.CleanedEnd; ce <= 0 || ce >= 2000 || m.status.DirtyRatio <= 0 {
		t.Fatalf("status after a bounded run: %+v", m.status)
	}
	for range 10 {
		if m.status.CleanedEnd == 2000 {
			break
		}
		if _, err := Run(ctx, cfg, m.list(), m.status, store, m); err != nil {
			t.Fatal(err)
		}
	}
	if m.status.CleanedEnd != 2000 || len(readLog(t, store, m.list())) != 2000 {
		t.Fatalf("after further runs: %+v", m.status)
	}
}

// TestCompactCorruptInput: a damaged input stops the run before anything
// of it is swapped.
func TestCompactCorruptInput(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMem()
	now := time.UnixMilli(1_800_000_000_000)
	entries := uploadLog(t, store, updates(50, 4, func(int) bool { return false }, now.UnixMilli()), 10, 5)
	obj, _ := store.Get(ctx, entries[1].Key)
	obj[40] ^= 1
	_ = store.Put(ctx, entries[1].Key, obj)
	m := newManifest(entries)
	_, err := Run(ctx, cfgFor(now), entries, metadata.CompactionStatus{}, store, m)
	if !errors.Is(err, ErrCorruptInput) || !bytes.Contains([]byte(err.Error()), []byte(entries[1].Key)) {
		t.Fatalf("run over a damaged object: %v", err)
	}
	if m.swaps != 0 {
		t.Fatalf("%d swaps over a damaged input", m.swaps)
	}
}

// TestCompactLastBatchNoResurrection: the log's last batch holds a value
// of a key and then its tombstone. A run keeps that batch's end (the
// uploaded end never moves back), but it must not keep the superseded
// value: once more data came, a later run past delete.retention.ms drops
// the tombstone from what is then the clean part, and a value kept
// beside it would come back to life.
func TestCompactLastBatchNoResurrection(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMem()
	now := time.UnixMilli(1_800_000_000_000)
	ts := now.UnixMilli() - 10_000
	recs := updates(20, 3, func(int) bool { return false }, ts)
	// The last batch: gone=1, other=1, gone=<tombstone>, last=1.
	recs = append(recs,
		rec{key: []byte("gone"), value: []byte("1"), ts: ts},
		rec{key: []byte("other"), value: []byte("1"), ts: ts},
		rec{key: []byte("gone"), value: nil, ts: ts},
		rec{key: []byte("last"), value: []byte("1"), ts: ts})
	entries := uploadLog(t, store, recs, 4, 3)
	m := newManifest(entries)
	if _, err := Run(ctx, cfgFor(now), entries, metadata.CompactionStatus{}, store, m); err != nil {
		t.Fatal(err)
	}
	for _, c := range readLog(t, store, m.list()) {
		if string(c.key) == "gone" && c.value != nil {
			t.Fatalf("the run kept the superseded value of %q at %d beside its tombstone", c.key, c.offset)
		}
	}
	if last := m.list()[len(m.list())-1].LastOffset; last != int64(len(recs)-1) {
		t.Fatalf("the uploaded end moved from %d to %d", len(recs)-1, last)
	}
	// More data is uploaded, then a run after delete.retention.ms.
	for _, e := range uploadLogAt(t, store, int64(len(recs)), []rec{{key: []byte("new"), value: []byte("1"), ts: now.UnixMilli()}}, 4, 1) {
		m.entries[e.BaseOffset] = e
	}
	later := now.Add(2 * time.Hour)
	if _, err := Run(ctx, cfgFor(later), m.list(), m.status, store, m); err != nil {
		t.Fatal(err)
	}
	var live []string
	for _, c := range readLog(t, store, m.list()) {
		if string(c.key) == "gone" {
			t.Fatalf("deleted key %q is back: offset %d value %q", c.key, c.offset, c.value)
		}
		live = append(live, string(c.key))
	}
	if len(live) != 20+3 {
		t.Fatalf("live keys after the second run: %v", live)
	}
}

// TestCompactAfterMergeAcrossCleanedEnd: a topic compacted, then switched
// to cleanup.policy=delete (whose runs merge small segments, here the
// clean one with the dirty ones after it), then back to compact. The
// merged entry starts below the cleaned end but holds dirty records: it
// must be mapped as dirty, or a value and its later tombstone in it are
// taken for clean ones and the value comes back once the tombstone goes.
func TestCompactAfterMergeAcrossCleanedEnd(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMem()
	now := time.UnixMilli(1_800_000_000_000)
	ts := now.UnixMilli()
	pad := func(k string) rec {
		return rec{key: []byte(k), value: bytes.Repeat([]byte("p"), 40), ts: ts}
	}
	var recs []rec
	add := func(rs ...rec) []metadata.SegmentEntry {
		es := uploadLogAt(t, store, int64(len(recs)), rs, 4, 1)
		recs = append(recs, rs...)
		return es
	}
	entries := add(pad("a"), pad("b"), pad("c"), pad("d"))
	m := newManifest(entries)
	if _, err := Run(ctx, cfgFor(now), m.list(), metadata.CompactionStatus{}, store, m); err != nil {
		t.Fatal(err)
	}
	if m.status.CleanedEnd != 4 {
		t.Fatalf("status after the first run: %+v", m.status)
	}
	// Dirty: gone=1, then its tombstone, then fillers.
	for _, es := range [][]metadata.SegmentEntry{
		add(rec{key: []byte("gone"), value: bytes.Repeat([]byte("v"), 40), ts: ts}, pad("e"), pad("f"), pad("g")),
		add(rec{key: []byte("gone"), ts: ts}, pad("h"), pad("i"), pad("j")),
		add(pad("k"), pad("l"), pad("m"), pad("n")),
		add(pad("o"), pad("p"), pad("q"), pad("r")),
	} {
		for _, e := range es {
			m.entries[e.BaseOffset] = e
		}
	}
	merge := cfgFor(now)
	merge.Compact = false
	if res, err := Run(ctx, merge, m.list(), m.status, store, m); err != nil || len(m.list()) != 1 {
		t.Fatalf("merge: %+v %v; manifest %v", res, err, m.list())
	}
	// Back to compact, after delete.retention.ms, with more data.
	for _, e := range add(pad("s"), pad("t"), pad("u"), pad("v")) {
		m.entries[e.BaseOffset] = e
	}
	later := now.Add(2 * time.Hour)
	if _, err := Run(ctx, cfgFor(later), m.list(), m.status, store, m); err != nil {
		t.Fatal(err)
	}
	for _, c := range readLog(t, store, m.list()) {
		if string(c.key) == "gone" {
			t.Fatalf("deleted key %q is back at offset %d: %q", c.key, c.offset, c.value)
		}
	}
}
