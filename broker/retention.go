package broker

import (
	"context"
	"errors"
	"time"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/retention"
	"github.com/strata-stream/strata/tiering"
)

// Total retention (retention.ms, retention.bytes) of the partitions this
// broker leads, for topics whose cleanup.policy has delete (DESIGN.md,
// "Background workers"). The decision is retention.Expired's; the order is
// this file's: the manifest change (the expired entries out, the new log
// start in, the objects recorded as garbage) is one fenced transaction;
// then readers stop at the new log start; the objects go after the grace
// period (the controller's sweep); the local files below the log start go
// at once (nothing reads them any more). Only uploaded segments expire
// when there is an object store: a segment still waiting for its upload
// waits for it.

// retentionLoop applies retention every RetentionInterval.
func (s *Server) retentionLoop(ctx context.Context) error {
	return s.partitionLoop(ctx, s.cfg.RetentionInterval, "retention", s.applyRetention)
}

// maxExpiredPerRun bounds the entries one retention pass removes (one
// etcd transaction); the rest go with the next pass.
const maxExpiredPerRun = metadata.MaxManifestChange - 1

// applyRetention expires p's oldest segments per its topic's retention.
func (s *Server) applyRetention(ctx context.Context, p *partition) error {
	cfg := p.config.Load()
	if !cfg.Deletes() || cfg.RetentionMs < 0 && cfg.RetentionBytes < 0 {
		return nil
	}
	if !p.workMu.TryLock() {
		return nil // a compaction run (which may take long): the next pass
	}
	defer p.workMu.Unlock()
	limits := retention.Limits{Ms: cfg.RetentionMs, Bytes: cfg.RetentionBytes}
	if s.cfg.Objects == nil {
		return s.expireLocal(ctx, p, limits)
	}
	p.rmu.RLock()
	entries := append([]metadata.SegmentEntry(nil), p.remote.entries...)
	p.rmu.RUnlock()
	if len(entries) == 0 {
		return nil
	}
	// The whole log counts: the uploaded segments (their record bytes, as
	// local segments count theirs) and the local ones not uploaded yet.
	var total int64
	segs := make([]retention.Segment, len(entries))
	for i, e := range entries {
		segs[i] = retention.Segment{MaxTimestamp: e.MaxTimestamp, Size: e.RawSize}
		total += e.RawSize
	}
	uploaded := entries[len(entries)-1].LastOffset + 1
	for _, seg := range p.log.Segments() {
		if seg.NextOffset > uploaded {
			total += seg.Size
		}
	}
	n := min(retention.Expired(segs, total, s.cfg.Now(), limits), maxExpiredPerRun)
	if n == 0 {
		return nil
	}
	expired := entries[:n]
	newStart := expired[n-1].LastOffset + 1
	var bytes int64
	for _, e := range expired {
		bytes += e.Size
	}
	err := s.commitLogStart(ctx, p, newStart, func(st *metadata.PartitionState) error {
		return s.store.ChangeManifest(ctx, p.lead, metadata.ManifestChange{Remove: expired, Garbage: tiering.EntryObjects(expired), Reason: "retention", State: st})
	})
	if errors.Is(err, metadata.ErrManifestChanged) {
		return errors.Join(err, s.reloadManifest(ctx, p)) // the next pass works from the manifest as it is
	}
	if err != nil {
		return err
	}
	p.rmu.Lock()
	// Uploads only append, and compaction waits for workMu: the expired
	// entries are still the first ones.
	inView := p.replaceEntriesLocked(expired, nil)
	p.rmu.Unlock()
	if !inView {
		if err := s.reloadManifest(ctx, p); err != nil {
			return err
		}
	}
	removed, err := p.log.RemoveSegmentsBefore(newStart)
	if s.metrics != nil {
		s.metrics.retentionSegments.WithLabelValues(p.topic).Add(float64(n))
		s.metrics.retentionBytes.WithLabelValues(p.topic).Add(float64(bytes))
	}
	s.logger.Info("retention expired segments", "topic", p.topic, "partition", p.id, "objects", n, "bytes", bytes,
		"log_start", newStart, "local_segments_removed", removed, "objects_deleted_after", s.cfg.GCGrace)
	return err
}

// expireLocal is retention without an object store: the local log's
// sealed segments expire.
func (s *Server) expireLocal(ctx context.Context, p *partition, limits retention.Limits) error {
	all := p.log.Segments()
	var total int64
	var segs []retention.Segment
	for _, seg := range all {
		total += seg.Size
		if !seg.Active { // every segment but the last
			segs = append(segs, retention.Segment{MaxTimestamp: seg.MaxTimestamp, Size: seg.Size})
		}
	}
	n := retention.Expired(segs, total, s.cfg.Now(), limits)
	if n == 0 {
		return nil
	}
	newStart := all[n-1].NextOffset
	err := s.commitLogStart(ctx, p, newStart, func(st *metadata.PartitionState) error {
		return s.store.UpdatePartitionState(ctx, p.lead, *st)
	})
	if err != nil {
		return err
	}
	removed, err := p.log.RemoveSegmentsBefore(newStart)
	if s.metrics != nil {
		s.metrics.retentionSegments.WithLabelValues(p.topic).Add(float64(removed))
	}
	s.logger.Info("retention deleted local segments", "topic", p.topic, "partition", p.id, "segments", removed, "log_start", newStart)
	return err
}

// commitLogStart advances p's log start to start: commit (given the new
// state) writes it to etcd, fenced, serialised with publishState; readers
// stop at it once it returns. A fenced commit drops the partition.
func (s *Server) commitLogStart(ctx context.Context, p *partition, start int64, commit func(*metadata.PartitionState) error) error {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	_, end := p.offsets()
	st := metadata.PartitionState{LogStartOffset: start, HighWatermark: end}
	if err := commit(&st); err != nil {
		if errors.Is(err, metadata.ErrFenced) {
			s.logger.Error("fenced: no longer the leader; retention stopped", "topic", p.topic, "partition", p.id, "epoch", p.epoch)
			s.dropPartition(p)
		}
		return err
	}
	p.logStart.Store(start)
	p.published = st
	return nil
}

// gcLoop sweeps the bucket every GCInterval while this broker is the
// controller: the cluster's one sweeper.
func (s *Server) gcLoop(ctx context.Context) error {
	if s.sweeper == nil {
		return nil
	}
	return s.loop(ctx, s.cfg.GCInterval, func(ctx context.Context) error {
		fence, ok := s.controllerFence()
		if !ok {
			return nil
		}
		start := s.cfg.Now()
		st, err := s.sweeper.Sweep(ctx, fence)
		if s.metrics != nil {
			s.metrics.gcDeleted.WithLabelValues("garbage").Add(float64(st.GarbageObjects))
			s.metrics.gcDeleted.WithLabelValues("orphan").Add(float64(st.Orphans))
			s.metrics.gcOrphanBytes.Add(float64(st.OrphanBytes))
		}
		if st.GarbageObjects > 0 || st.Orphans > 0 {
			s.logger.Info("bucket garbage collected", "garbage_objects", st.GarbageObjects, "garbage_records", st.GarbageRecords,
				"orphans", st.Orphans, "orphan_bytes", st.OrphanBytes, "took", s.cfg.Now().Sub(start).Round(time.Millisecond))
		}
		return err
	})
}
