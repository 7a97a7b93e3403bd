package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-stream/strata/compaction"
	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/retention"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering"
	"github.com/strata-stream/strata/tiering/objstore"
)

// Config configures a broker.
type Config struct {
	// DataDir holds the partitions' logs under DataDir/logs.
	DataDir string
	// BrokerID identifies the broker in the cluster (default 1).
	BrokerID int32
	// Advertise is the gRPC address clients reach this broker at.
	Advertise string
	// Rack is an optional placement label.
	Rack string
	// SyncPolicy is the local log's fsync policy (default always).
	SyncPolicy segment.SyncPolicy
	// MaxPartitions bounds a topic's partition count (default 10000).
	MaxPartitions int32
	// SessionTTL is the etcd lease TTL of the broker's session (default 6 s).
	SessionTTL time.Duration
	// StateInterval is how often partition offsets are written to etcd
	// (default 1 s).
	StateInterval time.Duration
	// ReconcileInterval is how often the broker reconciles the partitions
	// it serves with the topics in etcd (default 2 s).
	ReconcileInterval time.Duration
	// Objects is the object store sealed segments are uploaded to; nil
	// disables tiered storage.
	Objects objstore.Store
	// UploadInterval is how often sealed segments are looked for (default
	// 1 s); UploadConcurrency bounds the partitions uploading at once
	// (default 4).
	UploadInterval    time.Duration
	UploadConcurrency int
	// PageCacheWindow is how many bytes of each partition's newest local
	// log are left to the page cache: older sealed segments are dropped
	// from it once uploaded (segment.Log.DropCache, once each), so that
	// writing does not grow the page cache into all free memory
	// (docs/operations.md, "Page cache of uploaded segments"). Reads of a
	// dropped segment go to the disk, and what they bring back is left to
	// the kernel. 0 means the default, 256 MiB; negative never drops.
	PageCacheWindow int64
	// Reader configures cold reads (frame cache, read-ahead window).
	Reader tiering.ReaderConfig
	// LocalDiskLimit bounds the bytes of all local logs (0: unlimited).
	// Above it produce requests fail with UNAVAILABLE until uploads and
	// eviction bring it down: what happens when the object store stays
	// down long enough to fill the disk.
	LocalDiskLimit int64
	// WAL turns on the object-store WAL (needs Objects): acks=all is
	// acknowledged once a WAL object holding the records is in the bucket
	// and committed in etcd, and consumers read up to that committed end.
	// WALFlushInterval (default 10 ms) and WALFlushBytes (default 4 MiB)
	// bound how long and how much a flush gathers.
	WAL              bool
	WALFlushInterval time.Duration
	WALFlushBytes    int
	// WALMaxAge seals a partition's active segment once its first record
	// is this old (default 1 min), so that its WAL objects become garbage;
	// WALGCInterval is how often the controller deletes them (default
	// 10 s).
	WALMaxAge     time.Duration
	WALGCInterval time.Duration
	// Background workers (DESIGN.md, "Background workers"): retention
	// runs every RetentionInterval (default 1 min) and compaction looks
	// for work every CompactionInterval (default 30 s), on the partitions
	// this broker leads; compaction reads at most CompactionBytesPerSec
	// (0: unlimited). The controller sweeps the bucket every GCInterval
	// (default 1 min), deleting at most GCMaxDeletes objects (default
	// 1000): what no manifest references any more once GCGrace (default
	// 10 min) has passed.
	RetentionInterval     time.Duration
	CompactionInterval    time.Duration
	CompactionBytesPerSec int64
	GCInterval            time.Duration
	GCGrace               time.Duration
	GCMaxDeletes          int
	// Groups configures consumer group coordination.
	Groups GroupConfig
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.BrokerID == 0 {
		c.BrokerID = 1
	}
	if c.MaxPartitions <= 0 {
		c.MaxPartitions = 10000
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 6 * time.Second
	}
	if c.StateInterval <= 0 {
		c.StateInterval = time.Second
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = 2 * time.Second
	}
	if c.PageCacheWindow == 0 {
		c.PageCacheWindow = DefaultPageCacheWindow
	}
	if c.UploadInterval <= 0 {
		c.UploadInterval = time.Second
	}
	if c.UploadConcurrency <= 0 {
		c.UploadConcurrency = 4
	}
	if c.WALFlushInterval <= 0 {
		c.WALFlushInterval = 10 * time.Millisecond
	}
	if c.WALFlushBytes <= 0 {
		c.WALFlushBytes = 4 << 20
	}
	if c.WALMaxAge <= 0 {
		c.WALMaxAge = time.Minute
	}
	if c.WALGCInterval <= 0 {
		c.WALGCInterval = 10 * time.Second
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = time.Minute
	}
	if c.CompactionInterval <= 0 {
		c.CompactionInterval = 30 * time.Second
	}
	if c.GCInterval <= 0 {
		c.GCInterval = time.Minute
	}
	if c.GCGrace <= 0 {
		c.GCGrace = 10 * time.Minute
	}
	if c.GCMaxDeletes <= 0 {
		c.GCMaxDeletes = 1000
	}
	if c.Objects == nil {
		c.WAL = false
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

type partKey struct {
	topic string
	p     int32
}

// topicEntry is a topic as this broker serves it.
type topicEntry struct {
	meta   metadata.Topic
	config TopicConfig
}

// Server is a broker: it leads partitions, serves produce and fetch, and
// keeps their state in etcd.
//
// Lock order: mu only; no I/O under it. Per partition: workMu, then
// stateMu or tierMu, then rmu (rmu alone guards no I/O).
type Server struct {
	cfg     Config
	logger  *slog.Logger
	store   *metadata.Store
	metrics *Metrics
	reader  *tiering.Reader // nil without an object store
	// limiter paces compaction's reads; sweeper collects the bucket's
	// garbage (nil without an object store).
	limiter *compaction.Limiter
	sweeper *retention.Sweeper

	// leaseRenewed is when etcd last confirmed the session lease (unix
	// nanoseconds; 0: no live session). See leaseValid.
	leaseRenewed atomic.Int64

	// localBytes is the size of all local logs, as the tier loop last
	// measured it; uploadErr the last upload failure (nil once one works).
	localBytes atomic.Int64
	uploadErr  atomic.Pointer[error]
	uploadBufs *uploadBufferPool

	mu struct {
		sync.RWMutex
		session    *concurrency.Session
		topics     map[string]*topicEntry
		partitions map[partKey]*partition
		ready      bool
		// controller is set while this broker is the controller.
		controller *metadata.ControllerFence
	}
	// reconcileNow and assignNow wake the reconcile and controller loops
	// early (after assignments changed, or a topic was created).
	reconcileNow chan struct{}
	assignNow    chan struct{}
	assignMu     sync.Mutex // serialises the controller's assignment passes
	// health is the gRPC health service NewGRPCServer registered (guarded
	// by mu).
	health *health.Server
	// stopping is closed by BeginShutdown: streams end so that the gRPC
	// server can stop gracefully.
	stopping     chan struct{}
	stoppingOnce sync.Once
	// opening serialises opening and closing partitions (I/O happens
	// under it, not under mu).
	opening sync.Mutex
	// The WAL flusher: woken by appends (walKick), early when
	// walPending bytes reach WALFlushBytes (walFull); walSem (capacity
	// 1) serialises flushes, and a flush waits for it under its context
	// flushes.
	walKick    chan struct{}
	walFull    chan struct{}
	walPending atomic.Int64
	walSem     chan struct{}
	// groups coordinates the consumer groups whose coordinator this
	// broker is.
	groups *coordinator
}

// New returns a broker on store. Run starts it.
func New(cfg Config, store *metadata.Store, m *Metrics) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg, logger: cfg.Logger.With("broker", cfg.BrokerID), store: store, metrics: m}
	s.stopping = make(chan struct{})
	s.reconcileNow = make(chan struct{}, 1)
	s.walKick = make(chan struct{}, 1)
	s.walFull = make(chan struct{}, 1)
	s.walSem = make(chan struct{}, 1)
	s.assignNow = make(chan struct{}, 1)
	s.uploadBufs = newUploadBufferPool(cfg.UploadConcurrency)
	s.limiter = compaction.NewLimiter(cfg.CompactionBytesPerSec)
	if cfg.Objects != nil {
		s.reader = tiering.NewReader(cfg.Objects, cfg.Reader)
		s.sweeper = retention.NewSweeper(retention.SweeperConfig{Store: cfg.Objects, Meta: store, Grace: cfg.GCGrace,
			MaxDeletes: cfg.GCMaxDeletes, Now: cfg.Now, Logger: s.logger})
	}
	s.mu.topics = map[string]*topicEntry{}
	s.mu.partitions = map[partKey]*partition{}
	var gm *groupMetrics
	if m != nil {
		gm = m.groups
	}
	s.groups = newCoordinator(s, cfg.Groups, gm)
	if m != nil {
		m.bindServer(s)
	}
	return s
}

// watchLease records every renewal of the session lease, so that the
// broker can tell - without asking etcd - whether its lease may have
// expired (say, after the process was frozen): see leaseValid.
func (s *Server) watchLease(ctx context.Context, id clientv3.LeaseID) {
	s.leaseRenewed.Store(s.cfg.Now().UnixNano())
	ch, err := s.store.Client().KeepAlive(ctx, id)
	if err != nil {
		s.leaseRenewed.Store(0)
		return
	}
	go func() {
		for range ch {
			s.leaseRenewed.Store(s.cfg.Now().UnixNano())
		}
		s.leaseRenewed.Store(0) // the lease is gone or the session over
	}()
}

// leaseValid reports whether the session lease is surely still alive: it
// was renewed less than its TTL minus a safety margin ago. A broker frozen
// past its TTL (SIGSTOP, a long GC or VM pause) finds this false when it
// resumes, before its other goroutines notice the session is gone, so it
// acknowledges nothing as a leader it may no longer be.
func (s *Server) leaseValid() bool {
	last := s.leaseRenewed.Load()
	if last == 0 {
		return false
	}
	margin := min(s.cfg.SessionTTL/3, time.Second)
	return s.cfg.Now().Sub(time.Unix(0, last)) < s.cfg.SessionTTL-margin
}

// BeginShutdown ends the long-lived streams: produce streams acknowledge
// what they appended and end, consume streams end, both with UNAVAILABLE so
// clients reconnect elsewhere or later. Unary requests are unaffected; call
// it before the gRPC server's GracefulStop.
func (s *Server) BeginShutdown() {
	s.stoppingOnce.Do(func() { close(s.stopping) })
	s.mu.Lock()
	h := s.health
	s.mu.Unlock()
	if h != nil {
		h.Shutdown()
	}
}

// setReady records readiness and mirrors it in the gRPC health service.
func (s *Server) setReady(ready bool) {
	s.mu.Lock()
	s.mu.ready = ready
	h := s.health
	s.mu.Unlock()
	if h != nil {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ready {
			st = healthpb.HealthCheckResponse_SERVING
		}
		h.SetServingStatus("", st)
	}
}

// Ready reports whether the broker has registered and opened its
// partitions.
func (s *Server) Ready() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.ready
}

// Run registers the broker, leads and opens the partitions, and keeps
// their state in etcd until ctx ends; then it closes every log (synced).
func (s *Server) Run(ctx context.Context) error {
	defer s.closeAll()
	if s.reader != nil {
		defer s.reader.Close()
	}
	for {
		err := s.runSession(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.logger.Error("etcd session lost; stepping down and rejoining", "err", err)
		s.closeAll()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// runSession runs one etcd session: it returns when the session ends.
func (s *Server) runSession(ctx context.Context) error {
	// The session outlives ctx by a little: Close revokes its lease (so a
	// clean stop releases leadership at once), which needs a live context.
	// The lease is granted under ctx, so a stop is not held up by an etcd
	// that does not answer.
	sessCtx, cancelSess := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSess()
	lease, err := s.store.Client().Grant(ctx, int64(s.cfg.SessionTTL/time.Second))
	if err != nil {
		return fmt.Errorf("broker: etcd session lease: %w", err)
	}
	sess, err := concurrency.NewSession(s.store.Client(), concurrency.WithLease(lease.ID), concurrency.WithContext(sessCtx))
	if err != nil {
		return fmt.Errorf("broker: etcd session: %w", err)
	}
	defer sess.Close()
	s.watchLease(sessCtx, lease.ID)
	if err := s.register(ctx, sess); err != nil {
		return err
	}
	s.mu.Lock()
	s.mu.session = sess
	s.mu.Unlock()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.runController(gctx, sess) })
	// A broker that becomes the controller at once (the only one, or the
	// first) assigns before the first reconcile, so it starts ready.
	for range 20 {
		if _, ok := s.controllerFence(); ok {
			break
		}
		if id, err := s.store.ControllerID(ctx); err == nil && id >= 0 && id != s.cfg.BrokerID {
			break // another broker is the controller
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fence, ok := s.controllerFence(); ok {
		if err := s.assign(ctx, fence); err != nil {
			s.logger.Warn("initial assignment", "err", err)
		}
	}
	if err := s.reconcile(ctx); err != nil {
		s.logger.Warn("initial reconcile", "err", err)
	}
	s.setReady(true)
	s.logger.Info("broker ready", "address", s.cfg.Advertise)

	g.Go(func() error {
		select {
		case <-sess.Done():
			return errors.New("broker: etcd session expired")
		case <-gctx.Done():
			return nil
		}
	})
	g.Go(func() error { return s.loopKick(gctx, s.cfg.ReconcileInterval, s.reconcileNow, s.reconcile) })
	g.Go(func() error { return s.loop(gctx, s.cfg.StateInterval, s.publishState) })
	g.Go(func() error { return s.tierLoop(gctx) })
	g.Go(func() error { return s.walLoop(gctx) })
	g.Go(func() error { return s.loop(gctx, s.cfg.WALGCInterval, s.walGC) })
	g.Go(func() error { return s.loop(gctx, s.cfg.UploadInterval, s.measureLocal) })
	g.Go(func() error { return s.retentionLoop(gctx) })
	g.Go(func() error { return s.compactionLoop(gctx) })
	g.Go(func() error { return s.gcLoop(gctx) })
	g.Go(func() error { return s.groups.run(gctx, sess) })
	err = g.Wait()
	s.setReady(false)
	s.mu.Lock()
	s.mu.session = nil
	s.mu.Unlock()
	if ctx.Err() != nil {
		// A clean stop (the gRPC server has stopped taking requests):
		// close every log, then record each partition's final offsets
		// before the session - and with it the leadership - goes, so the
		// next leader starts after everything acknowledged here.
		// (Run then forgets them.) With the WAL, what the log holds is
		// committed first, so the next leader has all of it.
		s.finalFlush(s.allPartitions())
		for _, p := range s.allPartitions() {
			s.closePartition(p)
			s.handOver(p)
		}
	}
	return err
}

// handOver records a partition's final offsets, fenced by its leadership,
// once its log is closed (no more appends): what the next leader starts
// after.
func (s *Server) handOver(p *partition) {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	start, end := p.offsets()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.store.UpdatePartitionState(ctx, p.lead, metadata.PartitionState{LogStartOffset: start, HighWatermark: end})
	if err != nil {
		s.logger.Warn("record final offsets", "topic", p.topic, "partition", p.id, "err", err)
	}
}

// loopKick is loop that also runs fn whenever kick fires.
func (s *Server) loopKick(ctx context.Context, every time.Duration, kick <-chan struct{}, fn func(context.Context) error) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-kick:
		}
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("background step failed", "err", err)
		}
	}
}

// loop runs fn every interval until ctx ends; fn's errors are logged.
func (s *Server) loop(ctx context.Context, every time.Duration, fn func(context.Context) error) error {
	return s.loopKick(ctx, every, nil, fn) // a nil channel never fires
}

// partitionLoop runs fn on each partition this broker leads, every
// interval until ctx ends. A failing partition does not stop the pass;
// its errors are joined, each naming what failed and where, and logged.
func (s *Server) partitionLoop(ctx context.Context, every time.Duration, what string, fn func(context.Context, *partition) error) error {
	return s.loop(ctx, every, func(ctx context.Context) error {
		var errs []error
		for _, p := range s.allPartitions() {
			if err := fn(ctx, p); err != nil && ctx.Err() == nil {
				errs = append(errs, fmt.Errorf("%s of %s/%d: %w", what, p.topic, p.id, err))
			}
		}
		return errors.Join(errs...)
	})
}

// register puts the broker's key on its lease. A key left by a previous
// incarnation of this broker (killed before its lease expired) is revoked
// with its lease, which releases the partitions it led.
func (s *Server) register(ctx context.Context, sess *concurrency.Session) error {
	prev, ok, err := s.store.BrokerLease(ctx, s.cfg.BrokerID)
	if err != nil {
		return err
	}
	if ok && prev != sess.Lease() && prev != 0 {
		s.logger.Info("revoking the session of a previous incarnation", "lease", prev)
		if _, err := s.store.Client().Revoke(ctx, prev); err != nil {
			s.logger.Warn("revoke previous session", "err", err)
		}
	}
	return s.store.RegisterBroker(ctx, metadata.Broker{ID: s.cfg.BrokerID, Address: s.cfg.Advertise, Rack: s.cfg.Rack}, sess.Lease())
}

// reconcile makes the served partitions match the topics in etcd: it leads
// and opens the partitions of new topics and closes those of deleted ones.
// It holds opening throughout, so admin requests' own openings and drops
// run wholly before or after it: the list it read can be stale only by
// changes whose local step waits for it and then corrects the state.
func (s *Server) reconcile(ctx context.Context) error {
	s.opening.Lock()
	defer s.opening.Unlock()
	topics, err := s.store.ListTopics(ctx)
	if err != nil {
		return err
	}
	assigned, err := s.store.ListAssignments(ctx)
	if err != nil {
		return err
	}
	want := map[string]metadata.Topic{}
	for _, t := range topics {
		want[t.Name] = t
		if err := s.ensureTopicLocked(ctx, t, assigned[t.Name]); err != nil {
			s.logger.Warn("open topic", "topic", t.Name, "err", err)
		}
	}
	s.mu.RLock()
	var gone []metadata.Topic
	for name, e := range s.mu.topics {
		if t, ok := want[name]; !ok || t.ID != e.meta.ID {
			gone = append(gone, e.meta)
		}
	}
	s.mu.RUnlock()
	for _, t := range gone {
		s.dropTopicLocked(t.Name, t.ID, true)
	}
	return nil
}

// ensureTopic opens (and leads) the partitions of t assigned to this
// broker and not yet served, and stops leading those assigned elsewhere.
func (s *Server) ensureTopic(ctx context.Context, t metadata.Topic) error {
	s.opening.Lock()
	defer s.opening.Unlock()
	assigned, err := s.store.ListAssignments(ctx)
	if err != nil {
		return err
	}
	return s.ensureTopicLocked(ctx, t, assigned[t.Name])
}

// ensureTopicLocked is ensureTopic with the topic's assignments
// (partition → broker) given.
func (s *Server) ensureTopicLocked(ctx context.Context, t metadata.Topic, assigned map[int32]int32) error {
	cfg, err := ParseTopicConfig(t.Config)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if e, ok := s.mu.topics[t.Name]; ok && e.meta.ID != t.ID {
		s.mu.Unlock()
		s.dropTopicLocked(t.Name, e.meta.ID, true)
		s.mu.Lock()
	}
	// A new entry each time: entries are immutable once published, as
	// readers use them after releasing mu.
	s.mu.topics[t.Name] = &topicEntry{meta: t, config: cfg}
	sess := s.mu.session
	var missing []int32
	var moved []*partition
	for p := range t.Partitions {
		owner, isAssigned := assigned[p]
		part, led := s.mu.partitions[partKey{t.Name, p}]
		switch {
		case led && isAssigned && owner != s.cfg.BrokerID:
			moved = append(moved, part) // the controller moved it away
		case led:
			c := cfg
			part.config.Store(&c)
			part.log.SetRollLimits(cfg.SegmentBytes, cfg.SegmentAge())
		case isAssigned && owner == s.cfg.BrokerID:
			missing = append(missing, p)
		}
	}
	s.mu.Unlock()
	// One final flush for all of them (bounded): a store outage delays
	// the step-down once, not once per partition.
	s.finalFlush(moved)
	for _, part := range moved {
		s.logger.Info("partition assigned to another broker: stepping down", "topic", part.topic, "partition", part.id, "owner", assigned[part.id])
		s.dropPartition(part)
		s.handOver(part)
		s.release(part)
	}
	if sess == nil {
		return fmt.Errorf("%w: no etcd session", ErrUnavailable)
	}
	// In parallel: a failover hands a broker many partitions at once, and
	// each may rebuild its tail from the WAL.
	var errs []error
	var emu sync.Mutex
	var g errgroup.Group
	g.SetLimit(openConcurrency)
	for _, p := range missing {
		g.Go(func() error {
			part, err := s.openPartition(ctx, sess, t, p, cfg)
			if err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
				return nil
			}
			s.mu.Lock()
			s.mu.partitions[partKey{t.Name, p}] = part
			s.mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// openConcurrency bounds the partitions a broker opens at once.
const openConcurrency = 8

// topicDir holds one incarnation of a topic's partition logs.
func (s *Server) topicDir(name, id string) string {
	return filepath.Join(s.cfg.DataDir, "logs", name+"."+id)
}

func (s *Server) partitionDir(t metadata.Topic, p int32) string {
	return filepath.Join(s.topicDir(t.Name, t.ID), strconv.Itoa(int(p)))
}

// openPartition takes the leadership of t/p and opens its log.
func (s *Server) openPartition(ctx context.Context, sess *concurrency.Session, t metadata.Topic, p int32, cfg TopicConfig) (*partition, error) {
	// Bounded: opening runs under s.opening, and an object store that
	// does not answer must not hold up every other partition.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lead, err := s.store.AcquireLeadership(ctx, t, p, s.cfg.BrokerID, sess.Lease())
	if err != nil {
		return nil, err
	}
	// At once: a failure between acquiring and recording would make the
	// next attempt see a skipped epoch and discard a valid local log.
	if err := s.checkLeaderEpoch(t, p, lead.Epoch, lead.RunStart); err != nil {
		return nil, err
	}
	st, err := s.store.GetPartitionState(ctx, t.Name, p)
	if err != nil {
		return nil, err
	}
	var entries []metadata.SegmentEntry
	startOffset := st.HighWatermark
	if s.cfg.Objects != nil {
		if entries, err = s.store.ListSegments(ctx, t.Name, p); err != nil {
			return nil, err
		}
		if n := len(entries); n > 0 {
			// An empty local log (a new disk) continues after everything
			// uploaded, even if the published high watermark lags.
			startOffset = max(startOffset, entries[n-1].LastOffset+1)
		}
	}
	var walEntries []metadata.WALEntry
	// Uploaded, or deleted by retention (which may have left no entry).
	sealedEnd := st.LogStartOffset
	if n := len(entries); n > 0 {
		sealedEnd = max(sealedEnd, entries[n-1].LastOffset+1)
	}
	if s.cfg.WAL {
		ws, err := s.store.ListWAL(ctx)
		if err != nil {
			return nil, err
		}
		// The committed tail beyond the uploaded segments; an empty log
		// starts where it does (the high watermark published by an
		// earlier leader may count records that were never committed).
		walEntries = metadata.PartitionWAL(ws, t.Name, t.ID, p, sealedEnd)
		startOffset = sealedEnd
		if len(walEntries) > 0 {
			startOffset = max(sealedEnd, walEntries[0].BaseOffset)
		}
	}
	openLog := func() (*segment.Log, error) {
		l, err := segment.Open(segment.Config{
			Dir:          s.partitionDir(t, p),
			SegmentBytes: cfg.SegmentBytes,
			SegmentAge:   cfg.SegmentAge(),
			SyncPolicy:   s.cfg.SyncPolicy,
			// With the WAL, acks=all and readers wait for its commit, not
			// for a local fsync: the log fsyncs only for acks=leader.
			SyncOnDemand: s.cfg.WAL,
			StartOffset:  startOffset,
			OnSync:       s.metrics.observeFsync,
			Now:          s.cfg.Now,
			Logger:       s.logger.With("topic", t.Name, "partition", p),
		})
		if err != nil {
			return nil, fmt.Errorf("broker: open log of %s/%d: %w", t.Name, p, err)
		}
		return l, nil
	}
	l, err := openLog()
	if err != nil {
		return nil, err
	}
	var committed int64
	for attempt := 0; s.cfg.WAL; attempt++ {
		if committed, err = s.rebuildFromWAL(ctx, l, walEntries, sealedEnd); err == nil {
			break
		}
		_ = l.Close()
		if !errors.Is(err, errWALMismatch) || attempt > 0 {
			// The store or etcd failed us: the local log stays (it may
			// hold acks=leader records no one else has); try later.
			return nil, fmt.Errorf("broker: rebuild %s/%d from the WAL: %w", t.Name, p, err)
		}
		// The local log does not line up with the committed WAL (it lost
		// its tail with the disk, or holds records of a run the WAL
		// superseded): the WAL wins; rebuild from a fresh log.
		s.logger.Warn("local log does not match the committed WAL: rebuilding it from the WAL", "topic", t.Name, "partition", p, "err", err)
		if err := os.RemoveAll(s.partitionDir(t, p)); err != nil {
			return nil, fmt.Errorf("broker: discard log of %s/%d: %w", t.Name, p, err)
		}
		if err := s.checkLeaderEpoch(t, p, lead.Epoch, lead.RunStart); err != nil {
			return nil, err
		}
		if l, err = openLog(); err != nil {
			return nil, err
		}
	}
	if _, end := l.Offsets(); end < st.HighWatermark {
		// The local log lost acknowledged data (a disk lost or replaced)
		// and, without the WAL, what was not uploaded has no other copy.
		s.logger.Error("local log ends below the recorded high watermark",
			"topic", t.Name, "partition", p, "log_end", end, "high_watermark", st.HighWatermark)
	}
	if n := len(entries); n > 0 {
		if start, _ := l.Offsets(); start > entries[n-1].LastOffset+1 {
			s.logger.Error("records were lost with the local log: they were never uploaded; consumers skip the gap",
				"topic", t.Name, "partition", p, "lost_from", entries[n-1].LastOffset+1, "lost_to", start)
		}
	}
	if start, _ := l.Offsets(); start < st.LogStartOffset {
		// Retention committed a log start and the broker stopped before
		// it removed the local files below it.
		if _, err := l.RemoveSegmentsBefore(st.LogStartOffset); err != nil {
			_ = l.Close()
			return nil, err
		}
	}
	part := &partition{topic: t.Name, topicID: t.ID, id: p, epoch: lead.Epoch, lead: lead, log: l}
	part.logStart.Store(st.LogStartOffset)
	if s.cfg.WAL {
		part.wal = newWALState(committed)
	}
	part.config.Store(&cfg)
	var producers map[int64]*producerState
	if n := len(entries); n > 0 && entries[n-1].Producers {
		producers, err = s.loadProducerSnapshot(ctx, entries[n-1])
		switch {
		case errors.Is(err, ErrDataLoss):
			// Serve the partition anyway: its records are intact; only
			// retries of batches from before the tail may be duplicated.
			s.logger.Error("producer snapshot unusable: idempotent producers' retries of older batches may be written twice", "topic", t.Name, "partition", p, "err", err)
		case err != nil:
			_ = l.Close()
			return nil, err
		}
	}
	part.sealedProducers = producers
	if err := part.rebuildProducers(producers, sealedEnd); err != nil {
		s.logger.Warn("rebuilding idempotent producers' state", "topic", t.Name, "partition", p, "err", err)
	}
	if s.cfg.Objects != nil {
		cs, _, err := s.store.GetCompactionStatus(ctx, t.Name, p)
		if err != nil {
			_ = l.Close()
			return nil, err
		}
		part.remote.compaction = cs
		part.remote.entries = entries
		part.remote.snapshotDirty = len(entries) > 0 // rewrite it once: cheap, and repairs a lost one
		part.remoteRead = func(ctx context.Context, from int64, maxBytes int) ([]byte, int64, error) {
			return s.readRemote(ctx, part, from, maxBytes)
		}
		part.remoteTimestamp = func(ts int64) (int64, bool, error) {
			return s.remoteOffsetForTimestamp(part, ts)
		}
	}
	s.logger.Debug("leading partition", "topic", t.Name, "partition", p, "epoch", lead.Epoch)
	return part, nil
}

// leaderEpochFile records, in a partition's directory, the leader epoch at
// which this broker last led it.
const leaderEpochFile = "leader-epoch"

// checkLeaderEpoch keeps the local log of a partition only if this broker
// recorded it within its current run of leaderships (at an epoch ≥
// runStart): otherwise another broker led the partition since, and the
// local log may hold records that never were (or are no longer) the
// partition's - it is discarded, and the log starts after what etcd and
// the bucket know. Then it records the new epoch.
func (s *Server) checkLeaderEpoch(t metadata.Topic, p int32, epoch, runStart int64) error {
	dir := s.partitionDir(t, p)
	b, err := os.ReadFile(filepath.Join(dir, leaderEpochFile))
	if err == nil {
		last, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil || last < runStart || last >= epoch {
			s.logger.Warn("discarding the local log of an earlier leadership: another broker led the partition since",
				"topic", t.Name, "partition", p, "local_epoch", string(b), "new_epoch", epoch)
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("broker: discard stale log of %s/%d: %w", t.Name, p, err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("broker: partition dir: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, leaderEpochFile+".tmp"))
	if err != nil {
		return fmt.Errorf("broker: write leader epoch: %w", err)
	}
	_, err = f.WriteString(strconv.FormatInt(epoch, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(filepath.Join(dir, leaderEpochFile+".tmp"), filepath.Join(dir, leaderEpochFile))
	}
	if err != nil {
		return fmt.Errorf("broker: write leader epoch of %s/%d: %w", t.Name, p, err)
	}
	return nil
}

// dropTopic stops serving the incarnation id of a topic (any incarnation
// when id is empty). With remove (the topic was deleted) it releases the
// partitions' leadership and removes their data.
func (s *Server) dropTopic(name, id string, remove bool) {
	s.opening.Lock()
	defer s.opening.Unlock()
	s.dropTopicLocked(name, id, remove)
}

func (s *Server) dropTopicLocked(name, id string, remove bool) {
	s.mu.Lock()
	e := s.mu.topics[name]
	if e != nil && id != "" && e.meta.ID != id {
		e = nil // another incarnation: not ours to drop
	}
	var parts []*partition
	if e != nil {
		id = e.meta.ID
		delete(s.mu.topics, name)
		for k, p := range s.mu.partitions {
			if k.topic == name {
				parts = append(parts, p)
				delete(s.mu.partitions, k)
			}
		}
	}
	s.mu.Unlock()
	for _, p := range parts {
		s.closePartition(p)
		if remove {
			s.release(p)
		}
	}
	if remove && id != "" {
		dir := s.topicDir(name, id)
		if err := os.RemoveAll(dir); err != nil {
			s.logger.Warn("remove topic data", "dir", dir, "err", err)
		}
	}
}

// release gives up p's leadership at once (best effort: it also ends with
// the session).
func (s *Server) release(p *partition) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.store.ReleaseLeadership(ctx, p.lead); err != nil {
		s.logger.Warn("release leadership", "topic", p.topic, "partition", p.id, "err", err)
	}
}

// closeAll closes every partition's log (syncing it) and forgets them.
func (s *Server) closeAll() {
	s.mu.RLock()
	var names []string
	for name := range s.mu.topics {
		names = append(names, name)
	}
	s.mu.RUnlock()
	for _, n := range names {
		s.dropTopic(n, "", false)
	}
}

// publishState writes each partition's offsets to etcd, fenced by its
// leadership. A fenced partition is dropped: this broker no longer leads it.
func (s *Server) publishState(ctx context.Context) error {
	for _, p := range s.allPartitions() {
		if err := s.publishPartition(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// publishPartition writes p's offsets when they changed (under stateMu:
// retention's writes of the log start are never overwritten by an older
// one).
func (s *Server) publishPartition(ctx context.Context, p *partition) error {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	start, end := p.offsets()
	st := metadata.PartitionState{LogStartOffset: start, HighWatermark: end}
	if st == p.published {
		return nil
	}
	err := s.store.UpdatePartitionState(ctx, p.lead, st)
	if errors.Is(err, metadata.ErrFenced) {
		s.logger.Error("fenced: no longer the leader", "topic", p.topic, "partition", p.id, "epoch", p.epoch)
		s.dropPartition(p)
		return nil
	}
	if err != nil {
		return err
	}
	p.published = st
	return nil
}

func (s *Server) dropPartition(p *partition) {
	s.mu.Lock()
	if s.mu.partitions[partKey{p.topic, p.id}] == p {
		delete(s.mu.partitions, partKey{p.topic, p.id})
	}
	s.mu.Unlock()
	s.closePartition(p)
}

// closePartition closes a partition's log (synced) and ends its WAL
// waits: acks=all requests waiting on it fail at once (UNAVAILABLE)
// instead of at their timeout.
func (s *Server) closePartition(p *partition) {
	if p.wal != nil {
		p.wal.close()
	}
	if err := p.log.Close(); err != nil {
		s.logger.Warn("close log", "topic", p.topic, "partition", p.id, "err", err)
	}
}

// partition returns a partition this broker leads, or the precise reason
// it cannot serve it.
func (s *Server) partition(topic string, p int32) (*partition, error) {
	if err := metadata.ValidateTopicName(topic); err != nil {
		return nil, err
	}
	s.mu.RLock()
	e, ok := s.mu.topics[topic]
	part := s.mu.partitions[partKey{topic, p}]
	ready := s.mu.ready
	s.mu.RUnlock()
	switch {
	case !ok && !ready:
		return nil, fmt.Errorf("%w: broker is starting", ErrUnavailable)
	case !ok:
		return nil, s.unknownTopic(topic)
	case p < 0 || p >= e.meta.Partitions:
		return nil, fmt.Errorf("%w: %s/%d (the topic has %d partitions)", ErrPartitionNotFound, topic, p, e.meta.Partitions)
	case part == nil:
		return nil, s.notLeader(topic, p)
	}
	return part, nil
}

// unknownTopic is the error for a topic this broker does not serve: not
// found, unless etcd has it (created through another broker, not yet
// reconciled here) - then UNAVAILABLE, which clients retry, and the
// reconcile runs now.
func (s *Server) unknownTopic(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.store.GetTopic(ctx, topic); err == nil {
		select {
		case s.reconcileNow <- struct{}{}:
		default:
		}
		return fmt.Errorf("%w: topic %q exists but this broker has not taken it up yet", ErrUnavailable, topic)
	}
	return fmt.Errorf("%w: %q", ErrTopicNotFound, topic)
}

// notLeader builds the not-the-leader error with the current leader from
// etcd as the hint, when there is one.
func (s *Server) notLeader(topic string, p int32) error {
	nl := &NotLeaderError{Topic: topic, Partition: p, LeaderID: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l, ok, err := s.store.GetLeader(ctx, topic, p)
	if err != nil || !ok {
		return nl
	}
	nl.LeaderID, nl.LeaderEpoch = l.BrokerID, l.Epoch
	if brokers, err := s.store.ListBrokers(ctx); err == nil {
		for _, b := range brokers {
			if b.ID == l.BrokerID {
				nl.LeaderAddress = b.Address
			}
		}
	}
	return nl
}

// allPartitions returns the partitions this broker leads (a copy).
func (s *Server) allPartitions() []*partition {
	s.mu.RLock()
	defer s.mu.RUnlock()
	parts := make([]*partition, 0, len(s.mu.partitions))
	for _, p := range s.mu.partitions {
		parts = append(parts, p)
	}
	return parts
}

// partitionsOf returns the served partitions of a topic, sorted.
func (s *Server) partitionsOf(topic string) []*partition {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*partition
	for k, p := range s.mu.partitions {
		if k.topic == topic {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
