package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-stream/strata/compaction"
	"github.com/strata-stream/strata/internal/lowprio"
	"github.com/strata-stream/strata/metadata"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// Compaction of the partitions this broker leads (package compaction):
// key-based for topics whose cleanup.policy has compact, small-segment
// merging for the others. One partition at a time, at a lower CPU
// priority, paced by the broker's limiter (--compaction-bytes-per-sec).

// compactionLoop looks for work every CompactionInterval.
func (s *Server) compactionLoop(ctx context.Context) error {
	if s.cfg.Objects == nil {
		return nil
	}
	return s.partitionLoop(ctx, s.cfg.CompactionInterval, "compaction", s.compactPartition)
}

// compactPartition runs compaction (or merging) on p when it is due.
func (s *Server) compactPartition(ctx context.Context, p *partition) error {
	cfg := p.config.Load()
	p.workMu.Lock()
	defer p.workMu.Unlock()
	p.rmu.RLock()
	entries := append([]metadata.SegmentEntry(nil), p.remote.entries...)
	st := p.remote.compaction
	p.rmu.RUnlock()
	now := s.cfg.Now()
	if cfg.Compacted() {
		if !compaction.Due(entries, st, now, cfg.MinCleanableRatio, cfg.DeleteRetention()) {
			return nil
		}
	} else if len(compaction.MergePlan(entries, cfg.SegmentBytes, compactionMaxInputs)) == 0 {
		return nil
	}
	ccfg := compaction.Config{
		Topic: p.topic, TopicID: p.topicID, Partition: p.id, Epoch: p.epoch,
		Compact:         cfg.Compacted(),
		SegmentBytes:    cfg.SegmentBytes,
		DeleteRetention: cfg.DeleteRetention(),
		MaxInputs:       compactionMaxInputs,
		Grace:           s.cfg.GCGrace,
		Limiter:         s.limiter,
		Now:             s.cfg.Now,
		Logger:          s.logger,
	}
	var res compaction.Result
	var err error
	lowprio.Do(func() {
		res, err = compaction.Run(ctx, ccfg, entries, st, s.cfg.Objects, committer{s: s, p: p})
	})
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	if s.metrics != nil {
		s.metrics.compactionRuns.WithLabelValues(p.topic, outcome).Inc()
		s.metrics.compactionRead.Add(float64(res.BytesRead))
		s.metrics.compactionWritten.Add(float64(res.BytesOut))
		s.metrics.compactionRemoved.WithLabelValues(p.topic).Add(float64(res.RecordsIn - res.RecordsOut))
	}
	kind := "merge"
	if cfg.Compacted() {
		kind = "compaction"
	}
	s.logger.Info(kind+" run", "topic", p.topic, "partition", p.id, "swaps", res.Swaps, "objects_in", res.ObjectsIn, "objects_out", res.ObjectsOut,
		"bytes_in", res.BytesIn, "bytes_out", res.BytesOut, "records_removed", res.RecordsIn-res.RecordsOut, "tombstones_removed", res.TombstonesRemoved,
		"bytes_read", res.BytesRead, "dirty_ratio", res.Status.DirtyRatio, "took", s.cfg.Now().Sub(now).Round(time.Millisecond), "err", err)
	return err
}

// compactionMaxInputs bounds the inputs of one output (one swap is one
// etcd transaction).
const compactionMaxInputs = 64

// committer swaps a partition's compaction outputs in: fenced in etcd,
// then in what the partition's readers see.
type committer struct {
	s *Server
	p *partition
}

func (c committer) Swap(ctx context.Context, sw compaction.Swap) error {
	s, p := c.s, c.p
	var add []metadata.SegmentEntry
	if sw.Output != nil {
		add = append(add, *sw.Output)
	}
	err := s.store.ChangeManifest(ctx, p.lead, metadata.ManifestChange{Remove: sw.Inputs, Add: add, Garbage: sw.Garbage, Reason: "compaction", Compaction: sw.Status})
	if errors.Is(err, metadata.ErrManifestChanged) {
		return errors.Join(err, s.reloadManifest(ctx, p)) // the next run works from the manifest as it is
	}
	if err != nil {
		if errors.Is(err, metadata.ErrFenced) {
			s.logger.Error("fenced: no longer the leader; compaction stopped", "topic", p.topic, "partition", p.id, "epoch", p.epoch)
			s.dropPartition(p)
		}
		return err
	}
	if !c.apply(sw, add) {
		// Cannot happen (uploads only append, retention waits for workMu,
		// and etcd refused a change from a stale view).
		return errors.Join(fmt.Errorf("broker: compaction swap of %s/%d: its inputs are not in the manifest in memory", p.topic, p.id), s.reloadManifest(ctx, p))
	}
	return nil
}

// apply makes a committed swap (its inputs replaced by add) what the
// partition's readers see; it reports false when the swap's inputs are
// not in the view.
func (c committer) apply(sw compaction.Swap, add []metadata.SegmentEntry) bool {
	p := c.p
	p.rmu.Lock()
	defer p.rmu.Unlock()
	if len(sw.Inputs) > 0 && !p.replaceEntriesLocked(sw.Inputs, add) {
		return false
	}
	if sw.Status != nil {
		p.remote.compaction = *sw.Status
	}
	return true
}

// compactionStatus is p's compaction status for a description, with the
// dirty ratio as of now.
func (p *partition) compactionStatus() *stratav1.CompactionStatus {
	p.rmu.RLock()
	defer p.rmu.RUnlock()
	st := compactionProto(p.remote.compaction)
	st.DirtyRatio = compaction.DirtyRatio(p.remote.entries, p.remote.compaction.CleanedEnd)
	return st
}

func compactionProto(st metadata.CompactionStatus) *stratav1.CompactionStatus {
	return &stratav1.CompactionStatus{
		DirtyRatio:               st.DirtyRatio,
		CleanedEndOffset:         st.CleanedEnd,
		LastRunMs:                st.LastRunMs,
		LastRunDurationMs:        st.LastRunDurationMs,
		LastRunObjectsIn:         st.ObjectsIn,
		LastRunObjectsOut:        st.ObjectsOut,
		LastRunBytesIn:           st.BytesIn,
		LastRunBytesOut:          st.BytesOut,
		LastRunRecordsRemoved:    st.RecordsRemoved,
		LastRunTombstonesRemoved: st.TombstonesRemoved,
	}
}
