package broker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-stream/strata/internal/hugebuf"
	"github.com/strata-stream/strata/internal/lowprio"
	"github.com/strata-stream/strata/metadata"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/retention"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering"
	"github.com/strata-stream/strata/tiering/objstore"
)

// remoteState is a partition's manifest of uploaded segments, sorted by
// base offset, contiguous, as committed in etcd. Guarded by partition.rmu.
type remoteState struct {
	entries []metadata.SegmentEntry
	// snapshotDirty is set when the bucket's snapshot lags the manifest.
	snapshotDirty bool
	// compaction is the partition's compaction status; reads below its
	// CleanedEnd are served from the bucket (the compacted log), never
	// from uncompacted local copies.
	compaction metadata.CompactionStatus
}

// offsets returns the partition's first offset (remote or local, not
// below the log start retention left) and its readable end (the high
// watermark, with the WAL). With uploaded segments the log start holds
// even when the manifest starts after it: compaction may have emptied the
// first entries (a group of inputs whose every record was superseded),
// and it never moves the log start; reads there go on at the next record.
func (p *partition) offsets() (start, end int64) {
	start, end = p.log.Offsets()
	if p.wal != nil {
		end = min(end, p.wal.committed.Load())
	}
	ls := p.logStart.Load()
	p.rmu.RLock()
	if len(p.remote.entries) > 0 {
		start = min(start, p.remote.entries[0].BaseOffset, ls)
	}
	p.rmu.RUnlock()
	return min(max(start, ls), end), end
}

// cleanedEnd is the offset below which reads come from the compacted
// objects in the bucket (0: none).
func (p *partition) cleanedEnd() int64 {
	p.rmu.RLock()
	defer p.rmu.RUnlock()
	return p.remote.compaction.CleanedEnd
}

// reloadManifest reads p's manifest and compaction status from etcd
// again: a worker's change was refused as its view was stale
// (metadata.ErrManifestChanged; a commit that reported an error but
// landed leaves it so). Under tierMu, so that no upload appends to the
// view meanwhile.
func (s *Server) reloadManifest(ctx context.Context, p *partition) error {
	p.tierMu.Lock()
	defer p.tierMu.Unlock()
	es, err := s.store.ListSegments(ctx, p.topic, p.id)
	if err != nil {
		return err
	}
	cs, _, err := s.store.GetCompactionStatus(ctx, p.topic, p.id)
	if err != nil {
		return err
	}
	p.rmu.Lock()
	p.remote.entries = es
	p.remote.compaction = cs
	p.remote.snapshotDirty = true
	p.rmu.Unlock()
	s.logger.Warn("read the manifest again: a background worker's view of it was stale", "topic", p.topic, "partition", p.id, "entries", len(es))
	return nil
}

// replaceEntriesLocked makes a committed manifest change what p's readers
// see: the consecutive entries old of the view are replaced by add. It
// reports false (and changes nothing) when old is not in the view. The
// caller holds rmu.
func (p *partition) replaceEntriesLocked(old, add []metadata.SegmentEntry) bool {
	es := p.remote.entries
	i := 0
	for i < len(es) && es[i].Key != old[0].Key {
		i++
	}
	j := i + len(old)
	if j > len(es) || es[j-1].Key != old[len(old)-1].Key {
		return false
	}
	p.remote.entries = append(append(append([]metadata.SegmentEntry(nil), es[:i]...), add...), es[j:]...)
	p.remote.snapshotDirty = true
	return true
}

// remoteEntry returns the manifest entry holding offset, if any.
func (p *partition) remoteEntry(offset int64) (metadata.SegmentEntry, bool) {
	p.rmu.RLock()
	defer p.rmu.RUnlock()
	if e, ok := entryFrom(p.remote.entries, offset); ok && e.BaseOffset <= offset {
		return e, true
	}
	return metadata.SegmentEntry{}, false
}

// entryFrom returns the first entry of a manifest (sorted) that ends at or
// after offset: the one holding it, or the next stored after a gap.
func entryFrom(es []metadata.SegmentEntry, offset int64) (metadata.SegmentEntry, bool) {
	i := sort.Search(len(es), func(i int) bool { return es[i].LastOffset >= offset })
	if i < len(es) {
		return es[i], true
	}
	return metadata.SegmentEntry{}, false
}

// nextStored is the first offset after offset (which no uploaded segment
// holds) held by an uploaded segment, or, when none is before it, where
// the local log serves: localStart, or the compacted end when offset is
// below it.
func (p *partition) nextStored(offset, localStart int64) int64 {
	p.rmu.RLock()
	defer p.rmu.RUnlock()
	limit := localStart
	if offset < p.remote.compaction.CleanedEnd {
		limit = p.remote.compaction.CleanedEnd
	}
	if e, ok := entryFrom(p.remote.entries, offset); ok && e.BaseOffset > offset {
		return min(e.BaseOffset, limit)
	}
	return limit
}

// fromBucket reports whether a read at offset is served from the bucket:
// it is below the local log, or below the compacted end.
func (p *partition) fromBucket(offset, localStart int64) bool {
	return p.remoteRead != nil && (offset < localStart || offset < p.cleanedEnd())
}

// remoteEnd is the offset after the last uploaded record (-1 when none),
// or the log start when retention left it after that: what needs no
// upload.
func (p *partition) remoteEnd() int64 {
	end := int64(-1)
	p.rmu.RLock()
	if n := len(p.remote.entries); n > 0 {
		end = p.remote.entries[n-1].LastOffset + 1
	}
	p.rmu.RUnlock()
	if ls := p.logStart.Load(); ls > 0 {
		end = max(end, ls)
	}
	return end
}

// tierLoop uploads sealed segments and applies local retention, every
// interval, a few partitions at a time.
func (s *Server) tierLoop(ctx context.Context) error {
	if s.cfg.Objects == nil {
		return nil
	}
	t := time.NewTicker(s.cfg.UploadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		parts := s.allPartitions()
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(s.cfg.UploadConcurrency)
		for _, p := range parts {
			g.Go(func() error {
				// Bounded, so that one partition whose uploads keep failing
				// (a throttled prefix) cannot hold up the others' rounds.
				pctx, cancel := context.WithTimeout(gctx, 30*time.Second)
				defer cancel()
				if err := s.tierPartition(pctx, p); err != nil && gctx.Err() == nil {
					s.logger.Warn("tiering", "topic", p.topic, "partition", p.id, "err", err)
				}
				return nil
			})
		}
		_ = g.Wait()
	}
}

// measureLocal records the size of all local logs and reports crossing
// the local disk limit. It runs on its own ticker: uploads may be stuck
// retrying.
func (s *Server) measureLocal(context.Context) error {
	var total int64
	for _, p := range s.allPartitions() {
		for _, seg := range p.log.Segments() {
			total += seg.Size
		}
	}
	prev := s.localBytes.Swap(total)
	if limit := s.cfg.LocalDiskLimit; limit > 0 {
		switch {
		case total > limit && prev <= limit:
			s.logger.Error("local disk limit reached: refusing produce requests until uploads catch up",
				"local_bytes", total, "limit", limit, "upload_error", s.lastUploadErr())
		case total <= limit && prev > limit:
			s.logger.Info("back under the local disk limit: accepting produce requests", "local_bytes", total, "limit", limit)
		}
	}
	return nil
}

func (s *Server) lastUploadErr() error {
	if e := s.uploadErr.Load(); e != nil {
		return *e
	}
	return nil
}

// checkDiskLimit fails a produce while the local logs exceed the limit.
func (s *Server) checkDiskLimit() error {
	limit := s.cfg.LocalDiskLimit
	if limit <= 0 {
		return nil
	}
	if n := s.localBytes.Load(); n > limit {
		cause := "uploads are behind"
		if err := s.lastUploadErr(); err != nil {
			cause = "uploads are failing: " + err.Error()
		}
		return fmt.Errorf("%w: broker local disk limit reached (%d of %d bytes); %s", ErrDiskFull, n, limit, cause)
	}
	return nil
}

// tierPartition uploads p's sealed segments not yet in the manifest, in
// order, then evicts local segments per local retention. A segment is
// evicted only once its object is PUT and its manifest entry committed.
func (s *Server) tierPartition(ctx context.Context, p *partition) error {
	p.tierMu.Lock()
	defer p.tierMu.Unlock()
	if p.wal != nil {
		// WAL objects are garbage only once sealed segments cover them:
		// seal a quiet partition's tail after WALMaxAge, so the WAL
		// stays short whatever the traffic.
		if _, err := p.log.RollOlderThan(s.cfg.WALMaxAge); err != nil {
			return err
		}
	}
	uploaded := p.remoteEnd()
	for _, seg := range p.log.Segments() {
		if seg.Active || seg.NextOffset <= seg.BaseOffset || seg.NextOffset <= uploaded {
			continue
		}
		if p.wal != nil && seg.NextOffset > p.wal.committed.Load() {
			// Not before the WAL has committed it: the manifest never
			// gets ahead of the high watermark, and eviction (of
			// uploaded segments only) never takes what the WAL has yet
			// to ship.
			break
		}
		if uploaded >= 0 && seg.BaseOffset != uploaded {
			// Not contiguous with the manifest (the local log was lost and
			// restarted above it): upload anyway, the gap is reported.
			s.logger.Warn("uploading a segment that does not follow the manifest", "topic", p.topic, "partition", p.id, "manifest_end", uploaded, "segment_base", seg.BaseOffset)
		}
		if err := s.uploadSegment(ctx, p, seg); err != nil {
			// What is uploaded still leaves the page cache, while the
			// rest waits: most of all then.
			s.dropUploadedPages(p, uploaded)
			return err
		}
		uploaded = seg.NextOffset
	}
	s.dropUploadedPages(p, uploaded)
	if err := s.writeSnapshot(ctx, p); err != nil {
		return err
	}
	return s.evictLocal(p)
}

// DefaultPageCacheWindow is Config.PageCacheWindow's default.
const DefaultPageCacheWindow = 256 << 20

// dropUploadedPages drops from the page cache p's uploaded sealed segments
// that lie wholly outside its newest PageCacheWindow bytes, each once:
// pages a later read brings back (a lagging consumer) are left to the
// kernel. The caller holds p.tierMu.
func (s *Server) dropUploadedPages(p *partition, uploaded int64) {
	window := s.cfg.PageCacheWindow
	if window < 0 {
		return
	}
	segs := p.log.Segments()
	var newer, end int64 // newer: bytes of the segments after seg
	for i := len(segs) - 1; i >= 0; i-- {
		seg := segs[i]
		if newer >= window && !seg.Active && seg.NextOffset <= uploaded {
			if seg.NextOffset > p.pagesDroppedEnd {
				if err := p.log.DropCache(seg.BaseOffset); err != nil {
					s.logger.Debug("could not drop an uploaded segment from the page cache", "topic", p.topic, "partition", p.id, "segment", seg.BaseOffset, "err", err)
				}
			}
			end = max(end, seg.NextOffset)
		}
		newer += seg.Size
	}
	p.pagesDroppedEnd = max(p.pagesDroppedEnd, end)
}

func (s *Server) uploadSegment(ctx context.Context, p *partition, seg segment.SegmentInfo) error {
	start := s.cfg.Now()
	var (
		obj   []byte
		entry metadata.SegmentEntry
		err   error
	)
	producers := cloneStates(p.sealedProducers)
	bufs := s.uploadBufs.get(int(seg.Size))
	defer s.uploadBufs.put(bufs)
	// Reading and compressing a segment is the broker's biggest burst of
	// CPU; at a lower priority it yields to request handling.
	lowprio.Do(func() {
		var batches []byte
		batches, err = p.log.ReadSegmentInto(bufs.batches, seg.BaseOffset)
		if err != nil {
			err = fmt.Errorf("read sealed segment %d: %w", seg.BaseOffset, err)
			return
		}
		obj, entry, err = tiering.EncodeSegment(tiering.SegmentUpload{Topic: p.topic, TopicID: p.topicID, Partition: p.id, Epoch: p.epoch, Batches: batches, Buf: bufs.object})
		for h := range segment.Batches(batches) { // CRC-checked by ReadSegment
			if h.ProducerID >= 0 {
				recordBatch(producers, h, h.BaseOffset)
			}
		}
	})
	if err != nil {
		return err
	}
	err = tiering.Retry(ctx, 200*time.Millisecond, func() error {
		return s.cfg.Objects.Put(ctx, entry.Key, obj)
	}, func(attempt int, err error) {
		s.uploadErr.Store(&err)
		if attempt == 1 || attempt%10 == 0 {
			s.logger.Warn("upload failing; retrying (production continues)", "topic", p.topic, "partition", p.id, "key", entry.Key, "attempt", attempt, "err", err)
		}
		if s.metrics != nil {
			s.metrics.uploadRetries.Inc()
		}
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", entry.Key, err)
	}
	s.uploadErr.Store(nil)
	if len(producers) > 0 {
		// The snapshot goes before the commit: a committed segment that
		// says it has one always has it. (And after the object's PUT,
		// which may retry for long: both objects are fresh when the
		// commit comes, well within the sweeper's grace period.)
		snap, err := tiering.EncodeProducerSnapshot(producerSnapshot(producers, entry.LastOffset+1))
		if err != nil {
			return err
		}
		key := tiering.ProducerSnapshotKey(entry.Key)
		if err := tiering.Retry(ctx, 200*time.Millisecond, func() error { return s.cfg.Objects.Put(ctx, key, snap) }, nil); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		entry.Producers = true
	}
	entry.UploadedMs = s.cfg.Now().UnixMilli()
	if err := s.store.CommitSegment(ctx, p.lead, entry); err != nil {
		if errors.Is(err, metadata.ErrFenced) {
			s.dropPartition(p)
		}
		return fmt.Errorf("commit %s: %w", entry.Key, err)
	}
	p.sealedProducers = producers
	p.rmu.Lock()
	p.remote.entries = append(p.remote.entries, entry)
	p.remote.snapshotDirty = true
	p.rmu.Unlock()
	if s.metrics != nil {
		s.metrics.uploadedObjects.WithLabelValues(p.topic).Inc()
		s.metrics.uploadedBytes.WithLabelValues(p.topic).Add(float64(entry.Size))
		s.metrics.uploadedRawBytes.WithLabelValues(p.topic).Add(float64(entry.RawSize))
	}
	s.logger.Debug("uploaded segment", "topic", p.topic, "partition", p.id, "key", entry.Key,
		"bytes", entry.Size, "raw_bytes", entry.RawSize, "took", s.cfg.Now().Sub(start))
	return nil
}

// writeSnapshot writes the partition's manifest to the bucket when it
// changed since the last write.
func (s *Server) writeSnapshot(ctx context.Context, p *partition) error {
	p.rmu.RLock()
	dirty := p.remote.snapshotDirty
	entries := append([]metadata.SegmentEntry(nil), p.remote.entries...)
	p.rmu.RUnlock()
	if !dirty {
		return nil
	}
	b, err := tiering.EncodeSnapshot(tiering.Snapshot{Topic: p.topic, TopicID: p.topicID, Partition: p.id, Segments: entries})
	if err != nil {
		return err
	}
	// Only the current leader writes the snapshot (the PUT itself cannot
	// be fenced; this narrows a deposed leader's window to one round trip).
	if l, ok, err := s.store.GetLeader(ctx, p.topic, p.id); err != nil {
		return err
	} else if !ok || l.BrokerID != s.cfg.BrokerID || l.Epoch != p.epoch {
		return fmt.Errorf("not writing the snapshot of %s/%d: no longer its leader", p.topic, p.id)
	}
	if err := s.cfg.Objects.Put(ctx, tiering.SnapshotKey(p.topic, p.topicID, p.id), b); err != nil {
		return fmt.Errorf("write manifest snapshot: %w", err)
	}
	p.rmu.Lock()
	if len(p.remote.entries) == len(entries) {
		p.remote.snapshotDirty = false
	}
	p.rmu.Unlock()
	return nil
}

// evictLocal removes the oldest local segments that are uploaded, while
// local retention (local.retention.bytes, local.retention.ms; -2 means the
// total retention's value, -1 unlimited) asks for it, and those below the
// compacted end (reads there come from the bucket). The active segment and
// segments not yet uploaded are never evicted.
func (s *Server) evictLocal(p *partition) error {
	limitBytes, limitMs := p.config.Load().LocalRetention()
	// Over the broker's local disk limit, every uploaded segment may go,
	// whatever the local retention: its data is in the bucket.
	if s.cfg.LocalDiskLimit > 0 && s.localBytes.Load() > s.cfg.LocalDiskLimit {
		limitBytes = 0
	}
	uploaded, cleaned := p.remoteEnd(), p.cleanedEnd()
	segs := p.log.Segments()
	var total int64
	for _, seg := range segs {
		total += seg.Size
	}
	var evictable []retention.Segment // the uploaded prefix of the sealed segments
	useless := 0                      // how many of them lie below the compacted end
	for _, seg := range segs {
		if seg.Active || seg.NextOffset > uploaded {
			break
		}
		evictable = append(evictable, retention.Segment{MaxTimestamp: seg.MaxTimestamp, Size: seg.Size})
		if seg.NextOffset <= cleaned {
			useless = len(evictable)
		}
	}
	n := max(useless, retention.Expired(evictable, total, s.cfg.Now(), retention.Limits{Ms: limitMs, Bytes: limitBytes}))
	if n == 0 {
		return nil
	}
	evictBefore := segs[n-1].NextOffset
	n, err := p.log.RemoveSegmentsBefore(evictBefore)
	if n > 0 {
		s.logger.Debug("evicted local segments", "topic", p.topic, "partition", p.id, "segments", n, "before", evictBefore)
	}
	return err
}

// readRemote serves a fetch below the local log from the object store.
func (s *Server) readRemote(ctx context.Context, p *partition, from int64, maxBytes int) ([]byte, int64, error) {
	e, ok := p.remoteEntry(from)
	if !ok {
		start, end := p.offsets()
		return nil, from, fmt.Errorf("%w: offset %d of %s/%d, log has [%d, %d]", ErrOffsetOutOfRange, from, p.topic, p.id, start, end)
	}
	b, next, err := s.reader.Read(ctx, e, from, maxBytes)
	if err != nil {
		return nil, from, remoteReadError(p.topic, p.id, e, err)
	}
	if s.metrics != nil {
		s.metrics.remoteReadBytes.WithLabelValues(p.topic).Add(float64(len(b)))
	}
	return b, next, nil
}

// tierStatus reports where p's data lives.
func (p *partition) tierStatus(now time.Time) *stratav1.TierStatus {
	ts := &stratav1.TierStatus{RemoteStartOffset: -1, RemoteEndOffset: -1}
	segs := p.log.Segments()
	if len(segs) > 0 {
		ts.LocalStartOffset = segs[0].BaseOffset
	}
	p.rmu.RLock()
	if n := len(p.remote.entries); n > 0 {
		ts.RemoteStartOffset = p.remote.entries[0].BaseOffset
		ts.RemoteEndOffset = p.remote.entries[n-1].LastOffset + 1
		ts.RemoteObjects = int64(n)
		for _, e := range p.remote.entries {
			ts.RemoteBytes += e.Size
			ts.RemoteRawBytes += e.RawSize
		}
	}
	p.rmu.RUnlock()
	for _, seg := range segs {
		ts.LocalBytes += seg.Size
		if seg.NextOffset > ts.RemoteEndOffset && seg.NextOffset > seg.BaseOffset {
			ts.UploadLagBytes += seg.Size
			if !seg.Active && ts.UploadLagMs == 0 && seg.MaxTimestamp > 0 {
				ts.UploadLagMs = max(now.UnixMilli()-seg.MaxTimestamp, 1)
			}
		}
	}
	return ts
}

// remoteOffsetForTimestamp finds the first uploaded record whose timestamp
// is at or after ts: the first segment whose newest record reaches ts, the
// first frame of it that does (from the footer), then the record.
func (s *Server) remoteOffsetForTimestamp(p *partition, ts int64) (int64, bool, error) {
	p.rmu.RLock()
	var e metadata.SegmentEntry
	found := false
	for _, c := range p.remote.entries {
		if c.MaxTimestamp >= ts {
			e, found = c, true
			break
		}
	}
	localStart, _ := p.log.Offsets()
	p.rmu.RUnlock()
	if !found || e.BaseOffset >= localStart {
		return 0, false, nil // not in evicted data: the local log answers
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := s.reader.Footer(ctx, e)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %s/%d: %v", ErrUnavailable, p.topic, p.id, err)
	}
	for _, fr := range f.Frames {
		if fr.MaxTimestamp < ts {
			continue
		}
		b, _, err := s.readRemote(ctx, p, fr.FirstOffset, 1)
		if err != nil {
			return 0, false, err
		}
		off, ok := int64(0), false
		err = segment.ForEachBatch(b, func(h segment.BatchHeader, raw []byte) error {
			if ok || h.MaxTimestamp < ts {
				return nil
			}
			return segment.BatchRecords(raw, func(r segment.Record) error {
				if !ok && r.Timestamp >= ts {
					off, ok = r.Offset, true
				}
				return nil
			})
		})
		if err != nil {
			return 0, false, fmt.Errorf("%w: %s/%d: %v", ErrDataLoss, p.topic, p.id, err)
		}
		if ok {
			return off, true, nil
		}
	}
	return e.LastOffset + 1, true, nil
}

// loadProducerSnapshot reads the producer snapshot written beside the
// uploaded segment e.
func (s *Server) loadProducerSnapshot(ctx context.Context, e metadata.SegmentEntry) (map[int64]*producerState, error) {
	key := tiering.ProducerSnapshotKey(e.Key)
	var b []byte
	err := tiering.Retry(ctx, 100*time.Millisecond, func() error {
		var err error
		b, err = s.cfg.Objects.Get(ctx, key)
		return err
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("broker: read producer snapshot %s: %w", key, err)
	}
	snap, err := tiering.DecodeProducerSnapshot(b)
	if err != nil {
		return nil, fmt.Errorf("%w: producer snapshot %s: %v", ErrDataLoss, key, err)
	}
	if snap.End != e.LastOffset+1 {
		return nil, fmt.Errorf("%w: producer snapshot %s is as of offset %d, its segment ends at %d", ErrDataLoss, key, snap.End, e.LastOffset+1)
	}
	return statesFromSnapshot(snap), nil
}

// remoteReadError classifies a failed read of the uploaded segment e.
func remoteReadError(topic string, p int32, e metadata.SegmentEntry, err error) error {
	switch {
	case errors.Is(err, tiering.ErrCorruptObject):
		return fmt.Errorf("%w: %s/%d: %v", ErrDataLoss, topic, p, err)
	case errors.Is(err, objstore.ErrNotExist):
		return fmt.Errorf("%w: %s/%d: uploaded object %s is missing: %v", ErrDataLoss, topic, p, e.Key, err)
	case objstore.IsRetriable(err):
		return fmt.Errorf("%w: object store: %v", ErrUnavailable, err)
	}
	return err
}

// uploadBuffers are one upload's segment and object buffers.
type uploadBuffers struct {
	batches, object []byte
}

// kept reports whether b is one of the pool's pairs (outside the Go
// heap, returned to the pool after the upload); a heap pair starts empty.
func (b *uploadBuffers) kept() bool { return b.batches != nil }

// uploadBufferPool keeps at most n pairs of upload buffers for the
// broker's life: a broker that seals 64 MiB segments all day reuses the
// same memory instead of allocating 128 MiB per upload. They are mapped
// outside the Go heap, on huge pages where the kernel allows
// (internal/hugebuf): the heap then grows to twice what the broker uses
// without them, not with them, and each buffer costs a few hundred page
// faults instead of tens of thousands. A sync.Pool would not do: every GC
// cycle empties it.
type uploadBufferPool struct {
	free    chan *uploadBuffers
	mu      sync.Mutex
	created int
}

// uploadBufferSlack is what a pair holds beyond a segment: an object's
// footer (and room for a segment a little over its size).
const uploadBufferSlack = 2 << 20

func newUploadBufferPool(n int) *uploadBufferPool {
	return &uploadBufferPool{free: make(chan *uploadBuffers, max(n, 1))}
}

// get returns a pair for a segment of need bytes: one from the pool that
// is large enough, a new kept pair (of at least the default segment size)
// while fewer than n exist, or else a pair of the Go heap's, for this
// upload only.
func (u *uploadBufferPool) get(need int) *uploadBuffers {
	select {
	case b := <-u.free:
		if cap(b.batches) >= need+uploadBufferSlack {
			return b
		}
		u.free <- b // too small for this segment; never blocks (we took it)
	default:
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.created < cap(u.free) {
		u.created++
		size := max(need, int(DefaultTopicConfig.SegmentBytes)) + uploadBufferSlack
		return &uploadBuffers{batches: hugebuf.Alloc(size), object: hugebuf.Alloc(size)}
	}
	return &uploadBuffers{}
}

func (u *uploadBufferPool) put(b *uploadBuffers) {
	if b.kept() {
		u.free <- b // never blocks: at most cap(free) kept pairs exist
	}
}
