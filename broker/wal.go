package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering"
)

// The object-store WAL (DESIGN.md, "Durability"): every flush interval
// the broker ships the newest appends of all the partitions it leads in
// one WAL object, PUTs it, commits its sections in etcd fenced by each
// partition's leadership, and only then acknowledges acks=all and lets
// consumers read them. The committed end is the partition's high
// watermark: nothing a consumer saw can be lost with a broker and its
// disk, so a new leader that rebuilds the committed tail never assigns an
// offset twice.

// walState is a partition's WAL progress.
type walState struct {
	// committed is the offset after the last batch of a committed WAL
	// object: the high watermark, and where the next flush starts.
	committed atomic.Int64
	mu        sync.Mutex
	changed   chan struct{} // closed and replaced when committed moves or the partition closes
	closed    bool
}

func newWALState(committed int64) *walState {
	w := &walState{changed: make(chan struct{})}
	w.committed.Store(committed)
	return w
}

func (w *walState) advance(end int64) {
	w.committed.Store(end)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return // a commit that landed after the partition closed
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *walState) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.changed)
	}
}

// wait blocks until the committed end passes offset (nil), the partition
// closes (ErrNotLeader-like error) or ctx ends.
func (w *walState) wait(ctx context.Context, offset int64) error {
	for {
		w.mu.Lock()
		ch, closed := w.changed, w.closed
		w.mu.Unlock()
		if w.committed.Load() > offset {
			return nil
		}
		if closed {
			return errWALClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var errWALClosed = fmt.Errorf("%w: the partition closed before its records were committed to the WAL (leadership lost or broker stopping)", ErrUnavailable)

// kickWAL wakes the flusher after an append.
func (s *Server) kickWAL(bytes int) {
	if !s.cfg.WAL {
		return
	}
	if s.walPending.Add(int64(bytes)) >= int64(s.cfg.WALFlushBytes) {
		select {
		case s.walFull <- struct{}{}:
		default:
		}
	}
	select {
	case s.walKick <- struct{}{}:
	default:
	}
}

// walLoop flushes the WAL: at most one object per flush interval, sooner
// when WALFlushBytes are waiting.
func (s *Server) walLoop(ctx context.Context) error {
	if !s.cfg.WAL {
		return nil
	}
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.walKick:
		}
		if d := s.cfg.WALFlushInterval - time.Since(last); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			case <-s.walFull:
				t.Stop()
			}
		}
		last = time.Now()
		more, err := s.flushWAL(ctx, s.allPartitions())
		if more && err == nil {
			s.kickWAL(0) // what did not fit, or was not committed, goes next
		}
		if err != nil && ctx.Err() == nil {
			s.logger.Warn("WAL flush failed; retrying", "err", err)
			select {
			case s.walKick <- struct{}{}:
			default:
			}
		}
	}
}

// flushWAL ships the unshipped tails of parts in one WAL object and
// commits it, and reports whether anything was left for another flush.
// Flushes are serialised; one waits for another only while ctx lasts.
func (s *Server) flushWAL(ctx context.Context, parts []*partition) (more bool, err error) {
	select {
	case s.walSem <- struct{}{}:
	case <-ctx.Done():
		return true, ctx.Err()
	}
	defer func() { <-s.walSem }()
	s.walPending.Store(0)
	var sections []tiering.WALSection
	var shipping []*partition
	var ends []int64
	budget := s.cfg.WALFlushBytes
	for _, p := range parts {
		if p.wal == nil || budget <= 0 {
			continue
		}
		from := p.wal.committed.Load()
		// Written, synced or not: the WAL is what makes them durable (a
		// broker that restarts with a shorter local log takes the tail
		// back from the WAL).
		end := p.log.WrittenOffset()
		var batches []byte
		var readErr error
		for from < end && budget > 0 {
			res, err := p.log.ReadWritten(from, budget)
			if err != nil {
				readErr = err
				break
			}
			if len(res.Batches) == 0 {
				break
			}
			batches = append(batches, res.Batches...)
			budget -= len(res.Batches)
			from = res.Next
		}
		if readErr != nil && !errors.Is(readErr, segment.ErrClosed) {
			// This partition's acks=all wait (and its leadership will
			// move if the log failed); the others go on.
			s.logger.Error("reading a partition's log for the WAL", "topic", p.topic, "partition", p.id, "from", from, "err", readErr)
		}
		if len(batches) == 0 {
			continue
		}
		sections = append(sections, tiering.WALSection{Topic: p.topic, TopicID: p.topicID, Partition: p.id, Epoch: p.epoch, Batches: batches})
		shipping = append(shipping, p)
		ends = append(ends, from)
	}
	if len(sections) == 0 {
		return false, nil
	}
	more = budget <= 0 // the rest waits for the next flush
	start := s.cfg.Now()
	obj, idx, err := tiering.EncodeWAL(s.cfg.BrokerID, sections)
	if err != nil {
		return true, err
	}
	seq := start.UnixNano()
	key := tiering.WALKey(s.cfg.BrokerID, seq, rand.Uint32())
	// acks=all waits on it: retry often, so that the WAL resumes within a
	// second of the store's return.
	err = tiering.RetryUpTo(ctx, 50*time.Millisecond, time.Second, func() error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return s.cfg.Objects.Put(pctx, key, obj)
	}, func(attempt int, err error) {
		if attempt == 1 || attempt%20 == 0 {
			s.logger.Warn("WAL put failing; acks=all waits", "key", key, "attempt", attempt, "err", err)
		}
	})
	if err != nil {
		return true, fmt.Errorf("put WAL object %s: %w", key, err)
	}
	put := s.cfg.Now()
	leads := make([]metadata.Leadership, len(shipping))
	for i, p := range shipping {
		leads[i] = p.lead
	}
	ok, err := s.store.CommitWAL(ctx, metadata.WALObject{Key: key, BrokerID: s.cfg.BrokerID, Seq: seq, Entries: idx.Entries}, leads)
	var fenced []*partition
	for i, p := range shipping {
		switch {
		case i < len(ok) && ok[i]:
			p.wal.advance(ends[i])
		case err == nil:
			fenced = append(fenced, p)
		}
	}
	s.dropFenced(ctx, fenced)
	if s.metrics != nil {
		s.metrics.walObjects.Inc()
		s.metrics.walBytes.Add(float64(len(obj)))
		s.metrics.walPutLatency.Observe(put.Sub(start).Seconds())
		s.metrics.walCommitLatency.Observe(s.cfg.Now().Sub(put).Seconds())
	}
	if err != nil {
		return true, err
	}
	return more || len(fenced) > 0, nil
}

// dropFenced finds which of the partitions whose WAL commit failed its
// fence this broker no longer leads, and drops them; the others' tails are
// shipped again by the next flush.
func (s *Server) dropFenced(ctx context.Context, fenced []*partition) {
	for _, p := range fenced {
		ok, err := s.store.LeadershipCurrent(ctx, p.lead)
		if err == nil && !ok {
			s.logger.Error("fenced: no longer the leader; the WAL commit was refused", "topic", p.topic, "partition", p.id, "epoch", p.epoch)
			s.dropPartition(p)
		}
	}
}

// rebuildFromWAL brings a partition's freshly opened local log up to the
// committed end of its WAL (entries, sorted; floor: the end of the
// uploaded segments): it appends the committed batches the log lacks,
// read from the WAL objects, and returns the committed end - the high
// watermark. A log that does not line up with the WAL (a gap, a batch
// boundary that does not match) is reported with an error: the caller
// discards it and rebuilds from a fresh log.
func (s *Server) rebuildFromWAL(ctx context.Context, l *segment.Log, entries []metadata.WALEntry, floor int64) (int64, error) {
	_, next := l.Offsets()
	committed := floor
	for _, e := range entries {
		committed = max(committed, e.LastOffset+1)
	}
	var need []metadata.WALEntry
	for _, e := range entries {
		if e.LastOffset >= next {
			need = append(need, e)
		}
	}
	// Sections are fetched walRebuildWindow at a time, in parallel, and
	// appended in order.
	for lo := 0; lo < len(need); lo += walRebuildWindow {
		chunk := need[lo:min(lo+walRebuildWindow, len(need))]
		sections := make([][]byte, len(chunk))
		g, gctx := errgroup.WithContext(ctx)
		for i, e := range chunk {
			g.Go(func() error {
				b, err := s.readWALSection(gctx, e)
				sections[i] = b
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return committed, err
		}
		for i, e := range chunk {
			if e.BaseOffset > next {
				return committed, fmt.Errorf("%w: the WAL has a gap: the log ends at %d, the next committed section starts at %d", errWALMismatch, next, e.BaseOffset)
			}
			err := segment.ForEachBatch(sections[i], func(h segment.BatchHeader, b []byte) error {
				last := h.BaseOffset + int64(h.LastOffsetDelta)
				if last < next {
					return nil
				}
				if h.BaseOffset != next {
					return fmt.Errorf("%w: a WAL batch [%d, %d] does not start at the log's end %d", errWALMismatch, h.BaseOffset, last, next)
				}
				first, _, err := l.Append(b)
				if err != nil {
					return err
				}
				if first != h.BaseOffset {
					return fmt.Errorf("%w: WAL batch at %d appended at %d", errWALMismatch, h.BaseOffset, first)
				}
				next = last + 1
				return nil
			})
			if err != nil {
				return committed, err
			}
		}
	}
	if next < committed {
		return committed, fmt.Errorf("%w: the log ends at %d after the WAL, committed is %d", errWALMismatch, next, committed)
	}
	if err := l.Sync(ctx, next); err != nil {
		return committed, err
	}
	return committed, nil
}

// errWALMismatch is a local log that does not line up with the committed
// WAL: the one case in which the log is discarded and rebuilt.
var errWALMismatch = errors.New("local log does not line up with the committed WAL")

// walRebuildWindow is how many WAL sections a rebuild fetches at once.
const walRebuildWindow = 32

// readWALSection fetches and checks one committed WAL section.
func (s *Server) readWALSection(ctx context.Context, e metadata.WALEntry) ([]byte, error) {
	var section []byte
	err := tiering.Retry(ctx, 100*time.Millisecond, func() error {
		b, err := s.cfg.Objects.GetRange(ctx, e.Object, e.Pos, e.Len)
		section = b
		return err
	}, func(attempt int, err error) {
		if attempt == 1 || attempt%10 == 0 {
			s.logger.Warn("reading the WAL to rebuild a partition's tail", "topic", e.Topic, "partition", e.Partition, "attempt", attempt, "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read WAL section of %s/%d [%d, %d] in %s: %w", e.Topic, e.Partition, e.BaseOffset, e.LastOffset, e.Object, err)
	}
	batches, err := tiering.WALSectionBatches(section, e)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDataLoss, err)
	}
	return batches, nil
}

// finalFlush commits what parts' logs hold before they are handed over
// (bounded: a WAL that cannot be written leaves the tail to the local
// log, as after a crash).
func (s *Server) finalFlush(parts []*partition) {
	if !s.cfg.WAL || len(parts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		more, err := s.flushWAL(ctx, parts)
		if err != nil {
			s.logger.Warn("final WAL flush: the uncommitted tail stays in the local log only", "err", err)
			return
		}
		if !more {
			return
		}
	}
}

// walGCBatch bounds the WAL objects one GC pass deletes.
const walGCBatch = 1000

// walGC deletes WAL objects whose every section is covered by uploaded
// segments, or lies below the log start (or belongs to a deleted topic):
// first the commit records in
// etcd, then the objects. Only the controller runs it, for the whole
// cluster. A crash between the two leaves an object no record names: the
// orphan sweep's to collect.
func (s *Server) walGC(ctx context.Context) error {
	if s.cfg.Objects == nil {
		return nil
	}
	if _, ok := s.controllerFence(); !ok {
		return nil
	}
	ws, err := s.store.ListWAL(ctx)
	if err != nil || len(ws) == 0 {
		return err
	}
	topics, err := s.store.ListTopics(ctx)
	if err != nil {
		return err
	}
	ids := map[string]string{}
	for _, t := range topics {
		ids[t.Name] = t.ID
	}
	type tp struct {
		topic string
		p     int32
	}
	sealed := map[tp]int64{}
	sealedEnd := func(topic string, p int32) (int64, error) {
		if end, ok := sealed[tp{topic, p}]; ok {
			return end, nil
		}
		segs, err := s.store.ListSegments(ctx, topic, p)
		if err != nil {
			return 0, err
		}
		// Retention may have expired every uploaded segment: what lies
		// below the log start is garbage too.
		st, err := s.store.GetPartitionState(ctx, topic, p)
		if err != nil {
			return 0, err
		}
		end := st.LogStartOffset
		if n := len(segs); n > 0 {
			end = max(end, segs[n-1].LastOffset+1)
		}
		sealed[tp{topic, p}] = end
		return end, nil
	}
	records := map[string][]metadata.WALObject{}
	var order []string
	for _, w := range ws {
		if _, ok := records[w.Key]; !ok {
			order = append(order, w.Key)
		}
		records[w.Key] = append(records[w.Key], w)
	}
	deleted := 0
	for _, key := range order {
		garbage := true
		for _, w := range records[key] {
			for _, e := range w.Entries {
				if ids[e.Topic] != e.TopicID {
					continue // the topic (this incarnation) is gone
				}
				end, err := sealedEnd(e.Topic, e.Partition)
				if err != nil {
					return err
				}
				if end <= e.LastOffset {
					garbage = false
				}
			}
		}
		if !garbage {
			continue
		}
		for _, w := range records[key] {
			if err := s.store.DeleteWAL(ctx, w); err != nil {
				return err
			}
		}
		if err := s.cfg.Objects.Delete(ctx, key); err != nil {
			s.logger.Warn("delete WAL object (its record is gone; the orphan sweep will retry)", "key", key, "err", err)
			continue
		}
		if s.metrics != nil {
			s.metrics.walDeleted.Inc()
		}
		if deleted++; deleted >= walGCBatch {
			break
		}
	}
	if deleted > 0 {
		s.logger.Info("WAL objects garbage-collected", "deleted", deleted, "remaining", len(order)-deleted)
	}
	return nil
}
