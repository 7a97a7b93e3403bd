package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/strata-stream/strata/metadata"
)

// GroupConfig configures consumer group coordination.
type GroupConfig struct {
	// SessionTimeout is the session timeout of members that do not ask
	// for one (default 10 s).
	SessionTimeout time.Duration
	// CommitInterval is the least time between two etcd writes of a
	// group (default 100 ms): commits and membership changes that arrive
	// meanwhile are coalesced into the next write, and a commit is
	// answered once its write is done. So a group writes at most
	// 1/CommitInterval times a second, however many members commit
	// however often (each write one transaction, or ceil(keys/120) when
	// more than 120 keys changed).
	CommitInterval time.Duration
	// LagInterval is how often the lag metric is measured (default 5 s).
	LagInterval time.Duration
}

func (c *GroupConfig) setDefaults() {
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = 100 * time.Millisecond
	}
	if c.LagInterval <= 0 {
		c.LagInterval = 5 * time.Second
	}
}

// Bounds of what members may ask for.
const (
	minSessionTimeout       = time.Second
	maxSessionTimeout       = 5 * time.Minute
	defaultRebalanceTimeout = time.Minute
	maxRebalanceTimeout     = 30 * time.Minute
	// emptyGroupLinger is how long an empty group stays loaded (and its
	// coordinator key held) after its last member went.
	emptyGroupLinger = 10 * time.Second
	// groupFinalFlush bounds the last flush of a clean stop.
	groupFinalFlush = 5 * time.Second
)

// coordinator coordinates the consumer groups whose coordinator key this
// broker holds (metadata.AcquireGroupCoordinator, on the broker's
// session lease): a group is loaded from etcd when a member or
// FindCoordinator first asks for it, and unloaded when it has been empty
// for a while, when its fence fails, or when the session ends.
//
// Lock order: mu before group.mu; loadMu before mu. No I/O under mu.
type coordinator struct {
	s       *Server
	cfg     GroupConfig
	metrics *groupMetrics
	// loadMu serialises loading groups (I/O happens under it).
	loadMu sync.Mutex
	mu     struct {
		sync.Mutex
		groups map[string]*group
		// sess and ctx are the broker session's, while run runs.
		sess *concurrency.Session
		ctx  context.Context
		wg   *sync.WaitGroup
		// lag is the last measured lag, per group.
		lag map[string][]lagSample
	}
}

func newCoordinator(s *Server, cfg GroupConfig, m *groupMetrics) *coordinator {
	cfg.setDefaults()
	c := &coordinator{s: s, cfg: cfg, metrics: m}
	c.mu.groups = map[string]*group{}
	c.mu.lag = map[string][]lagSample{}
	return c
}

// run serves groups on sess until ctx ends or the session does; then it
// unloads every group (after a bounded final flush when ctx ended).
func (c *coordinator) run(ctx context.Context, sess *concurrency.Session) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	c.mu.Lock()
	c.mu.sess, c.mu.ctx, c.mu.wg = sess, ctx, &wg
	c.mu.Unlock()
	lag := time.NewTicker(c.cfg.LagInterval)
	defer lag.Stop()
	clean := false
loop:
	for {
		select {
		case <-ctx.Done():
			clean = true
			break loop
		case <-sess.Done():
			break loop
		case <-lag.C:
			c.measureLag(ctx)
		}
	}
	c.mu.Lock()
	c.mu.sess, c.mu.ctx = nil, nil
	groups := make([]*group, 0, len(c.mu.groups))
	for _, g := range c.mu.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	for _, g := range groups {
		if clean {
			fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), groupFinalFlush)
			if err := g.flush(fctx, c.s.cfg.Now()); err != nil {
				c.s.logger.Warn("final group flush", "group", g.name, "err", err)
			}
			fcancel()
		}
		c.unload(g, fmt.Errorf("%w: broker %d stopped coordinating", ErrNotCoordinator, c.s.cfg.BrokerID), false)
	}
	cancel()
	wg.Wait()
	return nil
}

// loaded returns the group if it is loaded here.
func (c *coordinator) loaded(name string) *group {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.groups[name]
}

// group returns the loaded group, loading it (taking its coordinator key)
// when no other broker coordinates it: ErrNotCoordinator names the one
// that does.
func (c *coordinator) group(ctx context.Context, name string) (*group, error) {
	if g := c.loaded(name); g != nil {
		return g, nil
	}
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	if g := c.loaded(name); g != nil {
		return g, nil
	}
	c.mu.Lock()
	sess, runCtx, wg := c.mu.sess, c.mu.ctx, c.mu.wg
	c.mu.Unlock()
	if sess == nil || !c.s.leaseValid() {
		return nil, fmt.Errorf("%w: broker %d has no etcd session", ErrNotCoordinator, c.s.cfg.BrokerID)
	}
	fence, err := c.s.store.AcquireGroupCoordinator(ctx, name, c.s.cfg.BrokerID, sess.Lease())
	if errors.Is(err, metadata.ErrCoordinatorExists) {
		return nil, fmt.Errorf("%w: %v", ErrNotCoordinator, err)
	}
	if err != nil {
		return nil, err
	}
	g, err := c.loadGroup(ctx, name, fence)
	if err != nil {
		return nil, err
	}
	// Read before g is shared (then only under g.mu).
	members, epoch := len(g.mu.members), g.mu.epoch
	c.mu.Lock()
	if c.mu.ctx != runCtx {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: the broker's session ended", ErrNotCoordinator)
	}
	c.mu.groups[name] = g
	wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer wg.Done()
		g.loop(runCtx)
	}()
	if c.metrics != nil {
		c.metrics.loads.Inc()
	}
	c.s.logger.Info("coordinating group", "group", name, "members", members, "epoch", epoch)
	return g, nil
}

// loadGroup builds a group from what etcd holds: the members of the last
// coordinator become unreported members with a fresh session.
func (c *coordinator) loadGroup(ctx context.Context, name string, fence metadata.GroupFence) (*group, error) {
	info, err := c.s.store.ReadGroup(ctx, name)
	if err != nil && !errors.Is(err, metadata.ErrGroupNotFound) {
		return nil, err
	}
	now := c.s.cfg.Now()
	g := &group{c: c, name: name, fence: fence, kick: make(chan struct{}, 1), done: make(chan struct{})}
	g.mu.members = map[string]*member{}
	g.mu.holder = map[topicPartition]*member{}
	g.mu.partitions = map[string]int32{}
	g.mu.offsets = map[topicPartition]int64{}
	g.mu.dirty = map[topicPartition]bool{}
	g.mu.round = newFlushRound()
	g.mu.idleSince = now
	g.mu.lastFlush = now.Add(-c.cfg.CommitInterval)
	for tp, o := range info.Offsets {
		g.mu.offsets[tp] = o
	}
	st := info.State
	g.mu.epoch, g.mu.assignor = st.Epoch, st.Assignor
	if g.mu.assignor == "" {
		g.mu.assignor = AssignorCooperativeSticky
	}
	for _, sm := range st.Members {
		m := &member{
			id: sm.ID, generation: sm.Generation, clientID: sm.ClientID, topics: sm.Topics,
			session: time.Duration(sm.SessionTimeoutMs) * time.Millisecond, rebalance: time.Duration(sm.RebalanceTimeoutMs) * time.Millisecond,
			persisted: true, held: map[topicPartition]bool{}, target: map[topicPartition]bool{},
		}
		m.deadline = now.Add(m.session)
		for t, ps := range sm.Assigned {
			for _, p := range ps {
				m.loadedAssigned = append(m.loadedAssigned, topicPartition{Topic: t, Partition: p})
			}
		}
		g.mu.members[m.id] = m
		g.mu.unreported++
	}
	g.mu.persistedMembers = len(st.Members)
	g.mu.partitions = c.s.topicPartitions(g.subscribedTopics())
	g.recomputeLocked()
	return g, nil
}

// unload forgets g: its member streams end with err (they find the
// coordinator again), commits waiting for a flush fail. With release the
// coordinator key is deleted (the group was empty).
func (c *coordinator) unload(g *group, err error, release bool) {
	c.mu.Lock()
	if c.mu.groups[g.name] == g {
		delete(c.mu.groups, g.name)
	}
	delete(c.mu.lag, g.name)
	c.mu.Unlock()
	g.mu.Lock()
	if g.mu.unloaded {
		g.mu.Unlock()
		return
	}
	g.mu.unloaded = true
	for _, m := range g.mu.members {
		if m.out != nil {
			m.out.fail(err)
		}
	}
	round := g.mu.round
	round.err = err
	close(round.done)
	g.mu.round = newFlushRound()
	g.mu.Unlock()
	close(g.done)
	if release {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.s.store.ReleaseGroupCoordinator(ctx, g.fence); err != nil {
			c.s.logger.Warn("release group coordinator", "group", g.name, "err", err)
		}
	}
	c.s.logger.Info("stopped coordinating group", "group", g.name, "reason", err)
}

// loop runs the group's timers and etcd writes until it is unloaded:
// member expiry and partition count changes are checked at the earliest
// deadline and at least every second; a kick (a commit, a membership
// change) only brings the next flush forward to what the commit interval
// allows.
func (g *group) loop(ctx context.Context) {
	c := g.c
	timer := time.NewTimer(0)
	defer timer.Stop()
	var nextCheck time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.done:
			return
		case <-g.kick:
		case <-timer.C:
		}
		now := c.s.cfg.Now()
		if !now.Before(nextCheck) {
			g.setPartitions(c.s.topicPartitions(g.subscribedTopics()), now)
			nextCheck = now.Add(time.Second)
			if next := g.expire(now); !next.IsZero() && next.Before(nextCheck) {
				nextCheck = next
			}
		}
		due, dirty := g.flushDue()
		if dirty && !due.After(now) {
			if err := g.flush(ctx, now); err != nil && ctx.Err() == nil {
				if errors.Is(err, ErrNotCoordinator) {
					c.unload(g, err, false)
					return
				}
				c.s.logger.Warn("group flush failed; retrying", "group", g.name, "err", err)
			}
			now = c.s.cfg.Now()
			due, dirty = g.flushDue()
		}
		if g.idle(now) {
			c.unload(g, fmt.Errorf("%w: group %s is empty", ErrNotCoordinator, g.name), true)
			return
		}
		wait := nextCheck.Sub(now)
		if dirty {
			wait = min(wait, due.Sub(now))
		}
		timer.Reset(max(wait, time.Millisecond))
	}
}

// flushDue returns when the next flush may run, and whether there is
// anything to flush.
func (g *group) flushDue() (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mu.lastFlush.Add(g.c.cfg.CommitInterval), g.mu.stateDirty || len(g.mu.dirty) > 0
}

// idle reports whether the group has been empty, with nothing to write,
// for emptyGroupLinger.
func (g *group) idle(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.mu.members) == 0 && !g.mu.stateDirty && len(g.mu.dirty) == 0 && now.Sub(g.mu.idleSince) >= emptyGroupLinger
}

// flush writes the group's state (when it changed) and the offsets
// committed since the last flush in one fenced etcd write, then resolves
// the commits waiting for it and admits the members it persisted.
func (g *group) flush(ctx context.Context, now time.Time) error {
	c := g.c
	g.flushMu.Lock()
	defer g.flushMu.Unlock()
	g.mu.Lock()
	if g.mu.unloaded || (!g.mu.stateDirty && len(g.mu.dirty) == 0) {
		g.mu.Unlock()
		return nil
	}
	var st *metadata.GroupState
	var joining []*member
	if g.mu.stateDirty {
		st = g.snapshotLocked(now)
		for _, m := range g.mu.members {
			if !m.persisted {
				joining = append(joining, m)
			}
		}
	}
	offs := make(map[topicPartition]int64, len(g.mu.dirty))
	for tp := range g.mu.dirty {
		offs[tp] = g.mu.offsets[tp]
	}
	round := g.mu.round
	g.mu.round = newFlushRound()
	g.mu.dirty = map[topicPartition]bool{}
	g.mu.stateDirty = false
	g.mu.lastFlush = now
	wasEmpty := g.mu.persistedMembers == 0
	g.mu.Unlock()

	err := c.s.store.CommitGroup(ctx, g.fence, st, offs)
	if c.metrics != nil {
		c.metrics.flushes.Inc()
	}
	var reloaded map[topicPartition]int64
	if err == nil && st != nil && wasEmpty && len(st.Members) > 0 {
		// The first members since the state was last empty: offsets may
		// have been reset meanwhile (a reset requires an empty state and
		// an unchanged one, so it came before this write).
		reloaded, err = c.s.store.GroupOffsets(ctx, g.name)
	}
	if errors.Is(err, metadata.ErrFenced) {
		err = fmt.Errorf("%w: group %s: %v", ErrNotCoordinator, g.name, err)
	} else if err != nil {
		err = fmt.Errorf("%w: writing group %s to etcd: %v", ErrUnavailable, g.name, err)
	}
	// The partition counts of what the members admitted now subscribe to,
	// so that their first assignment covers them.
	var counts map[string]int32
	if len(joining) > 0 {
		counts = c.s.topicPartitions(g.subscribedTopics())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	round.err = err
	close(round.done)
	if err != nil {
		// Write it all again next time (newer commits win).
		for tp := range offs {
			g.mu.dirty[tp] = true
		}
		if st != nil {
			g.mu.stateDirty = true
		}
		return err
	}
	if st == nil {
		return nil
	}
	g.mu.persistedMembers = len(st.Members)
	if reloaded != nil {
		for tp, o := range reloaded {
			if !g.mu.dirty[tp] {
				g.mu.offsets[tp] = o
			}
		}
		for tp := range g.mu.offsets {
			if _, ok := reloaded[tp]; !ok && !g.mu.dirty[tp] {
				delete(g.mu.offsets, tp)
			}
		}
	}
	admitted := false
	for _, m := range joining {
		if g.mu.members[m.id] == m {
			m.persisted = true
			g.answerJoinLocked(m)
			admitted = true
		}
	}
	if admitted {
		g.mu.partitions = counts
		g.recomputeLocked()
		g.reconcileAllLocked(now)
	}
	return nil
}

// topicPartitions returns the partition count of each topic this broker
// knows (from its reconcile); unknown topics are absent.
func (s *Server) topicPartitions(topics []string) map[string]int32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]int32, len(topics))
	for _, t := range topics {
		if e, ok := s.mu.topics[t]; ok {
			out[t] = e.meta.Partitions
		}
	}
	return out
}
