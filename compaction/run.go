package compaction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering"
)

var (
	// ErrCorruptInput is returned when an input object fails its checks
	// or does not match its manifest entry: the run stops, nothing of it
	// is rewritten.
	ErrCorruptInput = errors.New("compaction: input object is corrupt")
	// ErrTooSlow is returned when an output could not be committed within
	// half the grace period of its PUT: the sweeper may take an object
	// that old for an orphan, so it is left to be swept instead.
	ErrTooSlow = errors.New("compaction: an output was not committed in time")
)

// Store is the bucket as compaction uses it.
type Store interface {
	// Get returns a whole object (objstore.ErrNotExist if there is none).
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores an object.
	Put(ctx context.Context, key string, data []byte) error
}

// Swap is one manifest change of a run.
type Swap struct {
	// Inputs are replaced by Output (nil: every record of the inputs was
	// dropped, and their offsets become a gap).
	Inputs []metadata.SegmentEntry
	Output *metadata.SegmentEntry
	// Garbage are the object keys the change stops referencing.
	Garbage []string
	// Status, when set, is the partition's new compaction status (a swap
	// with no inputs records only it).
	Status *metadata.CompactionStatus
}

// Committer commits a run's swaps.
type Committer interface {
	// Swap applies s in one transaction fenced by the partition's
	// leadership (metadata.ErrFenced once it is lost), recording s.Garbage
	// for deletion after the grace period; once it returns nil, readers
	// see the new manifest.
	Swap(ctx context.Context, s Swap) error
}

// Config configures a run. Zero values take the defaults.
type Config struct {
	Topic     string
	TopicID   string
	Partition int32
	// Epoch is the leader epoch outputs are written at.
	Epoch int64
	// Compact drops superseded records and expired tombstones; without
	// it the run only merges small segments (MergePlan).
	Compact bool
	// SegmentBytes is the size outputs aim for (default 64 MiB).
	SegmentBytes int64
	// DeleteRetention is how long a tombstone is kept after its
	// timestamp (delete.retention.ms).
	DeleteRetention time.Duration
	// MaxMapBytes bounds the key map of one run (default 64 MiB): the
	// dirty entries mapped are as many as fit (at least one).
	MaxMapBytes int64
	// MaxInputs bounds the inputs of one output (default 64, at most
	// metadata.MaxManifestChange-1: one swap is one transaction).
	MaxInputs int
	// Grace is the sweeper's grace period (default 10 min): an output must
	// be committed within half of it after its PUT.
	Grace time.Duration
	// Limiter bounds the bytes read per second (nil: unlimited).
	Limiter *Limiter
	Now     func() time.Time
	Logger  *slog.Logger
}

func (c *Config) setDefaults() {
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = 64 << 20
	}
	if c.MaxMapBytes <= 0 {
		c.MaxMapBytes = 64 << 20
	}
	if c.MaxInputs <= 0 || c.MaxInputs >= metadata.MaxManifestChange {
		c.MaxInputs = min(64, metadata.MaxManifestChange-1)
	}
	if c.Grace <= 0 {
		c.Grace = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Result is what a run did.
type Result struct {
	// Status is the partition's compaction status after a Compact run
	// (recorded with the last swap).
	Status metadata.CompactionStatus
	Swaps  int
	// Inputs rewritten and outputs written, and their record batch bytes.
	ObjectsIn, ObjectsOut int
	BytesIn, BytesOut     int64
	RecordsIn, RecordsOut int64
	TombstonesRemoved     int64
	// BytesRead counts every byte of batches read (the key map's reads
	// included): what the limiter paced.
	BytesRead int64
}

// Run compacts (or, without cfg.Compact, merges) the manifest entries
// (sorted, as committed) of one partition whose compaction status is st,
// committing each output through c as soon as it is written. An error
// leaves the log consistent: what was swapped in stays, the rest is as
// before (an output PUT but not swapped is an orphan for the sweeper).
func Run(ctx context.Context, cfg Config, entries []metadata.SegmentEntry, st metadata.CompactionStatus, store Store, c Committer) (Result, error) {
	cfg.setDefaults()
	r := &run{cfg: cfg, store: store, c: c, start: cfg.Now()}
	r.entries = append([]metadata.SegmentEntry(nil), entries...)
	if !cfg.Compact {
		// Back to front, so that a group's indexes stay valid as earlier
		// groups are swapped.
		plan := MergePlan(entries, cfg.SegmentBytes, cfg.MaxInputs)
		for i := len(plan) - 1; i >= 0; i-- {
			g := &group{}
			for _, e := range entries[plan[i][0]:plan[i][1]] {
				b, err := r.read(ctx, e)
				if err != nil {
					return r.res, err
				}
				g.add(e, b, false)
			}
			if err := r.flush(ctx, g, plan[i][0]); err != nil {
				return r.res, err
			}
		}
		return r.res, nil
	}
	return r.res, r.compact(ctx, entries, st)
}

// run is one Run's state.
type run struct {
	cfg   Config
	store Store
	c     Committer
	start time.Time
	res   Result
	// entries is the manifest as the run's swaps left it.
	entries []metadata.SegmentEntry
	// keptTombstones counts the tombstones kept (that may go later), the
	// oldest stamped oldestTombstone.
	keptTombstones  int64
	oldestTombstone int64
}

// keyMap maps each key of the dirty entries to its latest offset.
type keyMap struct {
	m     map[string]int64
	bytes int64 // an estimate of its memory
}

// mapOverhead estimates a map entry's memory beyond its key's bytes.
const mapOverhead = 64

func (r *run) compact(ctx context.Context, entries []metadata.SegmentEntry, st metadata.CompactionStatus) error {
	if len(entries) == 0 {
		return nil
	}
	d0 := len(entries)
	for i, e := range entries {
		if Dirty(e, st.CleanedEnd) {
			d0 = i
			break
		}
	}
	km := keyMap{m: map[string]int64{}}
	end := d0 // entries [0, end) are rewritten: the clean ones and the mapped dirty ones
	for end < len(entries) && (end == d0 || km.bytes < r.cfg.MaxMapBytes) {
		b, err := r.read(ctx, entries[end])
		if err != nil {
			return err
		}
		err = forEachKeyed(b, func(rec segment.Record) {
			if _, ok := km.m[string(rec.Key)]; !ok {
				km.bytes += int64(len(rec.Key)) + mapOverhead
			}
			km.m[string(rec.Key)] = rec.Offset
		})
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorruptInput, entries[end].Key, err)
		}
		end++
	}
	if end == 0 {
		return nil
	}
	last := len(entries) - 1
	g := &group{}
	gStart := 0 // index in r.entries of the group's first input
	for i := range end {
		e := entries[i]
		b, err := r.read(ctx, e)
		if err != nil {
			return err
		}
		kept, changed, err := r.filter(b, km, i == last)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorruptInput, e.Key, err)
		}
		if len(g.inputs) > 0 && (g.size+int64(len(kept)) > r.cfg.SegmentBytes || len(g.inputs) >= r.cfg.MaxInputs) {
			n := len(r.entries)
			if err := r.flush(ctx, g, gStart); err != nil {
				return err
			}
			gStart += len(g.inputs) - (n - len(r.entries)) // where the next input now is
			g = &group{}
		}
		g.add(e, kept, changed)
	}
	cleanedEnd := entries[end-1].LastOffset + 1
	if err := r.flush(ctx, g, gStart); err != nil {
		return err
	}
	now := r.cfg.Now()
	r.res.Status = metadata.CompactionStatus{
		CleanedEnd:        cleanedEnd,
		DirtyRatio:        DirtyRatio(r.entries, cleanedEnd),
		KeptTombstones:    r.keptTombstones,
		OldestTombstoneMs: r.oldestTombstone,
		LastRunMs:         now.UnixMilli(),
		LastRunDurationMs: now.Sub(r.start).Milliseconds(),
		ObjectsIn:         int64(r.res.ObjectsIn),
		ObjectsOut:        int64(r.res.ObjectsOut),
		BytesIn:           r.res.BytesIn,
		BytesOut:          r.res.BytesOut,
		RecordsRemoved:    r.res.RecordsIn - r.res.RecordsOut,
		TombstonesRemoved: r.res.TombstonesRemoved,
	}
	status := r.res.Status
	return r.c.Swap(ctx, Swap{Status: &status})
}

// read fetches and checks one input object and returns its batches.
func (r *run) read(ctx context.Context, e metadata.SegmentEntry) ([]byte, error) {
	if err := r.cfg.Limiter.Wait(ctx, e.RawSize); err != nil {
		return nil, err
	}
	obj, err := r.get(ctx, e.Key)
	if err != nil {
		return nil, fmt.Errorf("compaction: read %s: %w", e.Key, err)
	}
	f, batches, err := segment.DecodeObject(obj)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptInput, e.Key, err)
	}
	if !tiering.FooterMatches(e, f) {
		return nil, fmt.Errorf("%w: %s holds [%d, %d], its manifest entry says [%d, %d]", ErrCorruptInput, e.Key, f.BaseOffset, f.LastOffset, e.BaseOffset, e.LastOffset)
	}
	r.res.BytesRead += int64(len(batches))
	return batches, nil
}

// retryBase is the first backoff of the run's retried GETs and PUTs.
const retryBase = 200 * time.Millisecond

// get GETs a whole object, retrying while the store asks for it.
func (r *run) get(ctx context.Context, key string) ([]byte, error) {
	var obj []byte
	err := tiering.Retry(ctx, retryBase, func() error {
		var err error
		obj, err = r.store.Get(ctx, key)
		return err
	}, nil)
	return obj, err
}

// forEachKeyed calls fn for every record with a key outside control
// batches.
func forEachKeyed(batches []byte, fn func(segment.Record)) error {
	return segment.ForEachBatch(batches, func(h segment.BatchHeader, b []byte) error {
		if h.IsControl() {
			return nil
		}
		return segment.ForEachRecord(b, func(rec segment.Record, _ []byte) error {
			if rec.Key != nil {
				fn(rec)
			}
			return nil
		})
	})
}

// filter returns the batches of one input the run keeps (rebuilt where
// some of their records go), and whether anything went. With keepLast the
// input's last record is kept whatever it is (an expired tombstone: the
// only record of the log's end that may go), so that its last batch stays
// and the uploaded end never moves back; the other records of that batch
// are filtered as any others (a value kept there beside its key's
// tombstone would come back once a later run drops the tombstone).
func (r *run) filter(batches []byte, km keyMap, keepLast bool) ([]byte, bool, error) {
	now := r.cfg.Now().UnixMilli()
	horizon := now - r.cfg.DeleteRetention.Milliseconds()
	out := make([]byte, 0, len(batches))
	changed := false
	var kept [][]byte
	err := segment.ForEachBatch(batches, func(h segment.BatchHeader, b []byte) error {
		r.res.RecordsIn += int64(h.NumRecords)
		if h.IsControl() {
			out = append(out, b...)
			r.res.RecordsOut += int64(h.NumRecords)
			return nil
		}
		kept = kept[:0]
		maxTS := int64(math.MinInt64)
		var final []byte // the batch's last record, when it went
		var finalTS int64
		finalTombstone := false
		err := segment.ForEachRecord(b, func(rec segment.Record, raw []byte) error {
			final, finalTS, finalTombstone = nil, rec.Timestamp, false
			if rec.Key != nil {
				if latest, ok := km.m[string(rec.Key)]; ok && latest != rec.Offset {
					final = raw
					return nil // superseded
				}
				if rec.Value == nil {
					if rec.Timestamp <= horizon {
						r.res.TombstonesRemoved++
						final, finalTombstone = raw, true
						return nil // a tombstone past delete.retention.ms
					}
					r.noteTombstone(rec.Timestamp)
				}
			}
			kept = append(kept, raw)
			maxTS = max(maxTS, rec.Timestamp)
			return nil
		})
		if err != nil {
			return err
		}
		if final != nil && keepLast && isLast(batches, b) {
			// The log's last record stays (see above); its tombstone waits
			// for a run after more data came (it is not scheduled).
			kept = append(kept, final)
			maxTS = max(maxTS, finalTS)
			if finalTombstone {
				r.res.TombstonesRemoved--
			}
		}
		r.res.RecordsOut += int64(len(kept))
		switch {
		case len(kept) == int(h.NumRecords):
			out = append(out, b...)
		case len(kept) == 0:
			changed = true
		default:
			changed = true
			out = segment.RebuildBatch(out, b, kept, h.LastOffsetDelta, maxTS)
		}
		return nil
	})
	return out, changed, err
}

// isLast reports whether b is the last batch of batches (b aliases it).
func isLast(batches, b []byte) bool {
	return len(b) > 0 && &batches[len(batches)-1] == &b[len(b)-1]
}

func (r *run) noteTombstone(ts int64) {
	if r.keptTombstones == 0 || ts < r.oldestTombstone {
		r.oldestTombstone = ts
	}
	r.keptTombstones++
}

// group is the inputs of one output, with the batches kept of each.
type group struct {
	inputs  []metadata.SegmentEntry
	kept    [][]byte
	size    int64
	changed bool
}

func (g *group) add(e metadata.SegmentEntry, kept []byte, changed bool) {
	g.inputs = append(g.inputs, e)
	g.kept = append(g.kept, kept)
	g.size += int64(len(kept))
	g.changed = g.changed || changed
}

// flush writes a group's output and swaps it in for its inputs, which are
// r.entries[at:at+len(g.inputs)]. An input alone and unchanged is
// left as it is.
func (r *run) flush(ctx context.Context, g *group, at int) error {
	if len(g.inputs) == 0 || len(g.inputs) == 1 && !g.changed {
		return nil
	}
	var b builder
	for _, kept := range g.kept {
		for h, batch := range segment.Batches(kept) {
			if err := b.add(batch, h); err != nil {
				return err
			}
		}
	}
	lastIn := g.inputs[len(g.inputs)-1]
	swap := Swap{Inputs: g.inputs, Garbage: tiering.EntryObjects(g.inputs)}
	if len(b.buf) > 0 {
		if err := b.stretch(lastIn.LastOffset); err != nil {
			return err
		}
		out, err := r.write(ctx, b.buf, g.inputs[0].BaseOffset, lastIn)
		if err != nil {
			return err
		}
		swap.Output = &out
	}
	putAt := r.cfg.Now()
	if err := r.c.Swap(ctx, swap); err != nil {
		return err
	}
	if d := r.cfg.Now().Sub(putAt); d > r.cfg.Grace/2 {
		// Committed all the same (the sweeper reads the manifest after
		// listing, so a committed output is safe); worth a warning.
		r.cfg.Logger.Warn("a compaction swap took longer than half the grace period", "topic", r.cfg.Topic, "partition", r.cfg.Partition, "took", d)
	}
	r.res.Swaps++
	r.res.ObjectsIn += len(g.inputs)
	r.res.BytesIn += sumRaw(g.inputs)
	repl := []metadata.SegmentEntry{}
	if swap.Output != nil {
		r.res.ObjectsOut++
		r.res.BytesOut += swap.Output.RawSize
		repl = append(repl, *swap.Output)
	}
	es := r.entries
	r.entries = append(append(append([]metadata.SegmentEntry(nil), es[:at]...), repl...), es[at+len(g.inputs):]...)
	return nil
}

// write encodes and PUTs an output whose entry starts at base, the first
// input's base, though its first batch may start later (the offsets
// dropped there stay the entry's, so the manifest has no gap), copying
// the producer snapshot of the manifest's last entry, lastIn, when it is
// the group's last input.
func (r *run) write(ctx context.Context, batches []byte, base int64, lastIn metadata.SegmentEntry) (metadata.SegmentEntry, error) {
	cfg := r.cfg
	obj, e, err := tiering.EncodeSegment(tiering.SegmentUpload{Topic: cfg.Topic, TopicID: cfg.TopicID, Partition: cfg.Partition, Epoch: cfg.Epoch, Batches: batches})
	if err != nil {
		return metadata.SegmentEntry{}, fmt.Errorf("compaction: the output of %s/%d: %w", cfg.Topic, cfg.Partition, err)
	}
	e.BaseOffset = base
	e.Key = tiering.CompactedObjectKey(cfg.Topic, cfg.TopicID, cfg.Partition, base, e.LastOffset, cfg.Epoch, rand.Uint32())
	put := func(key string, data []byte) error {
		return tiering.Retry(ctx, retryBase, func() error { return r.store.Put(ctx, key, data) }, nil)
	}
	start := cfg.Now()
	if lastIn.Producers && lastIn.LastOffset == e.LastOffset && r.isManifestLast(lastIn) {
		// A new leader starts from the producer snapshot of the last
		// entry: it moves with it (it holds the state as of the same end).
		snap, err := r.get(ctx, tiering.ProducerSnapshotKey(lastIn.Key))
		if err != nil {
			return e, fmt.Errorf("compaction: read the producer snapshot of %s: %w", lastIn.Key, err)
		}
		if err := put(tiering.ProducerSnapshotKey(e.Key), snap); err != nil {
			return e, fmt.Errorf("compaction: put %s: %w", tiering.ProducerSnapshotKey(e.Key), err)
		}
		e.Producers = true
	}
	if err := put(e.Key, obj); err != nil {
		return e, fmt.Errorf("compaction: put %s: %w", e.Key, err)
	}
	if d := cfg.Now().Sub(start); d > cfg.Grace/2 {
		return e, fmt.Errorf("%w: writing %s took %s, half the grace period is %s", ErrTooSlow, e.Key, d, cfg.Grace/2)
	}
	e.UploadedMs = cfg.Now().UnixMilli()
	return e, nil
}

// isManifestLast reports whether e is the last entry of the manifest.
func (r *run) isManifestLast(e metadata.SegmentEntry) bool {
	es := r.entries
	return len(es) > 0 && es[len(es)-1].Key == e.Key
}

func sumRaw(es []metadata.SegmentEntry) int64 {
	var n int64
	for _, e := range es {
		n += e.RawSize
	}
	return n
}

// builder concatenates kept batches into contiguous ones: a batch that
// does not start where the previous one ends stretches that one over the
// gap (the dropped offsets), as the sealed-object format requires.
type builder struct {
	buf      []byte
	lastPos  int // position of the last batch in buf
	lastBase int64
	next     int64 // the offset after the last batch
}

func (b *builder) add(batch []byte, h segment.BatchHeader) error {
	if len(b.buf) > 0 {
		if h.BaseOffset < b.next {
			return fmt.Errorf("%w: batch at %d overlaps the previous one, which ends at %d", ErrCorruptInput, h.BaseOffset, b.next-1)
		}
		if err := b.stretch(h.BaseOffset - 1); err != nil {
			return err
		}
	}
	b.lastPos, b.lastBase, b.next = len(b.buf), h.BaseOffset, h.NextOffset()
	b.buf = append(b.buf, batch...)
	return nil
}

// stretch makes the last batch end at last (if it ends before).
func (b *builder) stretch(last int64) error {
	if last < b.next {
		return nil
	}
	d := last - b.lastBase
	if d > segment.MaxOffsetDelta {
		return fmt.Errorf("compaction: a gap of %d offsets after batch %d is too long to stretch over", last-b.next+1, b.lastBase)
	}
	segment.SetLastOffsetDelta(b.buf[b.lastPos:], int32(d))
	b.next = last + 1
	return nil
}
