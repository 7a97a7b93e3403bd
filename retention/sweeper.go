package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/tiering/objstore"
)

// Metadata is what the sweeper reads and writes in etcd
// (*metadata.Store).
type Metadata interface {
	ListTopics(ctx context.Context) ([]metadata.Topic, error)
	// SegmentKeys returns the object keys of every manifest entry of a
	// topic's partitions.
	SegmentKeys(ctx context.Context, topic string) (map[string]bool, error)
	ListWAL(ctx context.Context) ([]metadata.WALObject, error)
	// ListGarbage returns garbage records oldest first (limit 0: all).
	ListGarbage(ctx context.Context, limit int) ([]metadata.Garbage, error)
	// DeleteGarbage removes a record, fenced by the election.
	DeleteGarbage(ctx context.Context, fence metadata.ControllerFence, g metadata.Garbage) error
}

// SweeperConfig configures a Sweeper. Zero values take the defaults.
type SweeperConfig struct {
	Store objstore.Store
	Meta  Metadata
	// Grace is how long an object stays after no manifest references it
	// (default 10 min): longer than any read of an object through an old
	// manifest, and than any time between an object's PUT and its commit.
	Grace time.Duration
	// MaxDeletes bounds the objects one pass deletes (default 1000).
	MaxDeletes int
	Now        func() time.Time
	Logger     *slog.Logger
}

// Sweeper deletes the bucket's garbage (see the package doc). Only the
// holder of the cluster's election runs it.
type Sweeper struct {
	cfg SweeperConfig
}

// NewSweeper returns a sweeper.
func NewSweeper(cfg SweeperConfig) *Sweeper {
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Minute
	}
	if cfg.MaxDeletes <= 0 {
		cfg.MaxDeletes = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sweeper{cfg: cfg}
}

// SweepStats is what one pass deleted.
type SweepStats struct {
	// Garbage objects (of garbage records past their grace) and the
	// records themselves.
	GarbageObjects int
	GarbageRecords int
	// Orphans and their bytes.
	Orphans     int
	OrphanBytes int64
}

// Sweep runs one pass as the election holder of fence: first the garbage
// records past their grace, then the orphans, at most MaxDeletes objects
// in all. Deleting an object that is already gone succeeds, so a pass cut
// short (a crash, a lost election) is simply run again.
func (s *Sweeper) Sweep(ctx context.Context, fence metadata.ControllerFence) (SweepStats, error) {
	var st SweepStats
	now := s.cfg.Now()
	horizon := now.Add(-s.cfg.Grace).UnixMilli()
	gs, err := s.cfg.Meta.ListGarbage(ctx, 0)
	if err != nil {
		return st, err
	}
	budget := s.cfg.MaxDeletes
	for _, g := range gs {
		if g.SinceMs > horizon || budget <= 0 {
			break // records are oldest first
		}
		for _, k := range g.Keys {
			if err := s.cfg.Store.Delete(ctx, k); err != nil {
				return st, fmt.Errorf("retention: delete %s (garbage of %s/%d since %s): %w", k, g.Topic, g.Partition, time.UnixMilli(g.SinceMs).UTC().Format(time.RFC3339), err)
			}
		}
		if err := s.cfg.Meta.DeleteGarbage(ctx, fence, g); err != nil {
			return st, err
		}
		st.GarbageObjects += len(g.Keys)
		st.GarbageRecords++
		budget -= len(g.Keys)
		s.cfg.Logger.Debug("deleted garbage objects", "topic", g.Topic, "partition", g.Partition, "reason", g.Reason, "objects", len(g.Keys),
			"unreferenced_for", now.Sub(time.UnixMilli(g.SinceMs)).Round(time.Second))
	}
	if budget <= 0 {
		return st, nil
	}
	// What references the bucket is read before the listing, so that
	// only candidates are kept (at most budget: the listing stops there,
	// and a bucket of millions of objects is never held in memory), and
	// again after it: an object goes only if neither read references it.
	// An object PUT after the listing is not looked at, and a commit that
	// lands before the second read is seen.
	refs, err := s.references(ctx)
	if err != nil {
		return st, err
	}
	var candidates []objstore.ObjectInfo
	for _, prefix := range []string{"topics/", "wal/"} {
		err := s.cfg.Store.List(ctx, prefix, func(o objstore.ObjectInfo) error {
			if !isOrphan(o, refs, now, s.cfg.Grace) {
				return nil
			}
			if candidates = append(candidates, o); len(candidates) >= budget {
				return errEnough
			}
			return nil
		})
		if errors.Is(err, errEnough) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("retention: list %s: %w", prefix, err)
		}
	}
	if len(candidates) == 0 {
		return st, nil
	}
	if refs, err = s.references(ctx); err != nil {
		return st, err
	}
	for _, o := range Orphans(candidates, refs, now, s.cfg.Grace) {
		if err := s.cfg.Store.Delete(ctx, o.Key); err != nil {
			return st, fmt.Errorf("retention: delete orphan %s: %w", o.Key, err)
		}
		st.Orphans++
		st.OrphanBytes += o.Size
		s.cfg.Logger.Info("deleted an orphan object: no manifest entry, topic or WAL record references it", "key", o.Key, "bytes", o.Size,
			"age", now.Sub(o.ModTime).Round(time.Second))
	}
	return st, nil
}

// errEnough stops a listing once a pass has all the candidates it may
// delete.
var errEnough = errors.New("retention: enough orphan candidates")

// references reads what the metadata references. The garbage records are
// read last: a manifest change that lands meanwhile either still shows
// its old entries in the manifest read, or its record in this read.
func (s *Sweeper) references(ctx context.Context) (References, error) {
	refs := References{Topics: map[string]string{}, Segments: map[string]bool{}, WAL: map[string]bool{}, Pending: map[string]bool{}}
	topics, err := s.cfg.Meta.ListTopics(ctx)
	if err != nil {
		return refs, err
	}
	for _, t := range topics {
		refs.Topics[t.Name] = t.ID
		keys, err := s.cfg.Meta.SegmentKeys(ctx, t.Name)
		if err != nil {
			return refs, err
		}
		for k := range keys {
			refs.Segments[k] = true
		}
	}
	ws, err := s.cfg.Meta.ListWAL(ctx)
	if err != nil {
		return refs, err
	}
	for _, w := range ws {
		refs.WAL[w.Key] = true
	}
	gs, err := s.cfg.Meta.ListGarbage(ctx, 0)
	if err != nil {
		return refs, err
	}
	for _, g := range gs {
		for _, k := range g.Keys {
			refs.Pending[k] = true
		}
	}
	return refs, nil
}
