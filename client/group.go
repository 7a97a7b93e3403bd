package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

var (
	// ErrFenced is returned by commits of a member the group no longer
	// has (its session expired, it missed its rebalance timeout, or it
	// left): its partitions were given to others.
	ErrFenced = errors.New("client: not a member of the group anymore (fenced)")
	// ErrNoOffset is returned by Poll for an assigned partition without a
	// committed offset when the reset policy is ResetNone.
	ErrNoOffset = errors.New("client: no committed offset")
)

// ParseOffsetReset parses earliest, latest or none.
func ParseOffsetReset(s string) (OffsetReset, error) {
	switch s {
	case "latest":
		return ResetLatest, nil
	case "earliest":
		return ResetEarliest, nil
	case "none":
		return ResetNone, nil
	}
	return 0, fmt.Errorf("client: offset reset %q: want earliest, latest or none", s)
}

func (r OffsetReset) String() string {
	switch r {
	case ResetEarliest:
		return "earliest"
	case ResetLatest:
		return "latest"
	}
	return "none"
}

// GroupConfig configures a GroupConsumer.
type GroupConfig struct {
	// Group is the group's name; Topics are the topics to consume.
	Group  string
	Topics []string
	// Assignor is range, roundrobin or cooperative-sticky; empty means
	// the group's (cooperative-sticky for a new group).
	Assignor string
	// SessionTimeout: without a heartbeat for this long the member is
	// removed (0: the broker's default, 10 s). The consumer itself stops
	// consuming its partitions when it could not heartbeat for this long.
	SessionTimeout time.Duration
	// RebalanceTimeout bounds how long the consumer may take to give up
	// revoked partitions (0: 60 s); Poll must be called within it.
	RebalanceTimeout time.Duration
	// ManualCommit turns auto-commit off: the application calls Commit or
	// CommitOffsets. With auto-commit, Poll commits every
	// AutoCommitInterval (default 5 s) the positions of the records
	// returned by the previous Polls, and revoked partitions' positions
	// are committed before they are given up, and on Close. (A
	// partition's position is where the reset policy started it until
	// Poll returned a record of it.)
	ManualCommit       bool
	AutoCommitInterval time.Duration
	// Reset is where a partition without a committed offset starts, and
	// where one continues when its committed offset is no longer in the
	// log: ResetEarliest, ResetLatest, or ResetNone (the zero value): Poll
	// fails with ErrNoOffset (or the OUT_OF_RANGE error).
	Reset OffsetReset
	// OnAssigned is called from Poll with partitions the consumer now
	// owns, before any of their records is returned. OnRevoked is called
	// from Poll (and Close) with partitions it is giving up, after their
	// last records were returned and before another member may consume
	// them: commit there with ManualCommit. OnLost is called from Poll
	// with partitions taken away without a revocation (the member was
	// fenced): committing them fails; nil means OnRevoked.
	OnAssigned func([]TopicPartition)
	OnRevoked  func([]TopicPartition)
	OnLost     func([]TopicPartition)
	// Fetch configures the partition fetches.
	Fetch ConsumerConfig
	// ClientID is shown by DescribeGroup.
	ClientID string
}

// GroupConsumer consumes the partitions a consumer group assigns to it.
// Poll must be called from one goroutine; Commit, CommitOffsets and
// Assignment may be called from any.
type GroupConsumer struct {
	c       *Client
	cfg     GroupConfig
	results chan fetchResult
	events  *eventQueue
	acks    chan groupAck
	closing chan struct{}
	// loopDone is closed when the membership loop has ended.
	loopDone  chan struct{}
	closeOnce sync.Once
	closeErr  error

	// Poll's own state. fetchErr is a partition's error that came with
	// other partitions' records: the next Poll returns it.
	lastAutoCommit time.Time
	noOffset       error
	fetchErr       error

	mu struct {
		sync.Mutex
		memberID    string
		generation  int64
		coordinator string
		// session numbers the membership: it changes with every stream
		// and when partitions are lost, and events of an older one are
		// stale.
		session uint64
		owned   map[TopicPartition]*ownedPartition
		fatal   error
		nextTok uint64
	}
}

// ownedPartition is a partition Poll applied: its fetcher and positions.
type ownedPartition struct {
	token  uint64
	cancel context.CancelFunc
	done   chan struct{}
	// position is the offset after the last record Poll returned, or
	// before any the start the reset policy resolved (-1: not yet);
	// committed the last position committed (-1: none).
	position  int64
	committed int64
}

type fetchResult struct {
	tp    TopicPartition
	token uint64
	recs  []ConsumedRecord
	next  int64
	err   error
}

// groupEvent is what the membership loop tells Poll.
type groupEvent struct {
	session    uint64
	assignment *stratav1.Assignment
	lost       []TopicPartition
	err        error
}

type groupAck struct {
	session uint64
	epoch   int64
	owned   []TopicPartition
}

// eventQueue is an unbounded queue: the membership loop never blocks on
// a slow Poll (it must keep heartbeating).
type eventQueue struct {
	mu     sync.Mutex
	q      []groupEvent
	notify chan struct{}
}

func (e *eventQueue) push(ev groupEvent) {
	e.mu.Lock()
	e.q = append(e.q, ev)
	e.mu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

func (e *eventQueue) pop() (groupEvent, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.q) == 0 {
		return groupEvent{}, false
	}
	ev := e.q[0]
	e.q = e.q[1:]
	return ev, true
}

// JoinGroup starts a consumer in cfg.Group; Poll returns its records.
// Close it to leave the group.
func (c *Client) JoinGroup(cfg GroupConfig) (*GroupConsumer, error) {
	if cfg.Group == "" || len(cfg.Topics) == 0 {
		return nil, fmt.Errorf("client: a group consumer needs a group and topics")
	}
	if cfg.AutoCommitInterval <= 0 {
		cfg.AutoCommitInterval = 5 * time.Second
	}
	if cfg.Fetch.RetryBackoff <= 0 {
		cfg.Fetch.RetryBackoff = 100 * time.Millisecond
	}
	g := &GroupConsumer{
		c: c, cfg: cfg,
		results:  make(chan fetchResult),
		events:   &eventQueue{notify: make(chan struct{}, 1)},
		acks:     make(chan groupAck, 4),
		closing:  make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	g.mu.owned = map[TopicPartition]*ownedPartition{}
	g.lastAutoCommit = time.Now()
	go g.membership()
	return g, nil
}

// MemberID is the consumer's member id ("" until it joined).
func (g *GroupConsumer) MemberID() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mu.memberID
}

// Assignment returns the partitions the consumer owns, sorted.
func (g *GroupConsumer) Assignment() []TopicPartition {
	g.mu.Lock()
	defer g.mu.Unlock()
	return sortedTPs(slices.Collect(maps.Keys(g.mu.owned)))
}

func sortedTPs(tps []TopicPartition) []TopicPartition {
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	return tps
}

// maxPollWait is how long Poll waits for records before returning none.
const maxPollWait = 500 * time.Millisecond

// Poll returns the next records of the partitions the consumer owns,
// waiting up to 500 ms (or until ctx ends) for some; it may return none.
// It runs the rebalance callbacks and, with auto-commit, commits. Errors:
// ErrNoOffset (ResetNone), ErrClosed, the partition consumers'
// non-retriable errors, and what ended the membership (an invalid
// configuration, say).
func (g *GroupConsumer) Poll(ctx context.Context) ([]ConsumedRecord, error) {
	select {
	case <-g.closing:
		return nil, ErrClosed
	default:
	}
	timer := time.NewTimer(maxPollWait)
	defer timer.Stop()
	for {
		if err := g.handleEvents(ctx); err != nil {
			return nil, err
		}
		g.mu.Lock()
		fatal := g.mu.fatal
		g.mu.Unlock()
		if fatal != nil {
			return nil, fatal
		}
		if g.noOffset != nil {
			return nil, g.noOffset
		}
		if err := g.fetchErr; err != nil {
			g.fetchErr = nil
			return nil, err
		}
		if !g.cfg.ManualCommit && time.Since(g.lastAutoCommit) >= g.cfg.AutoCommitInterval {
			g.lastAutoCommit = time.Now()
			cctx, cancel := context.WithTimeout(ctx, g.cfg.AutoCommitInterval)
			if err := g.Commit(cctx); err != nil && !errors.Is(err, context.Canceled) {
				g.c.logger.Warn("group auto-commit failed", "group", g.cfg.Group, "err", err)
			}
			cancel()
		}
		select {
		case <-g.events.notify:
		case r := <-g.results:
			recs, err, ok := g.accept(r)
			if !ok {
				continue
			}
			if err != nil {
				return nil, err
			}
			// Whatever else is ready, in the same answer.
			for more := true; more && len(recs) < 10000; {
				select {
				case r := <-g.results:
					if rs, err, ok := g.accept(r); ok {
						if err != nil {
							g.fetchErr = err // for the next Poll
							return recs, nil
						}
						recs = append(recs, rs...)
					}
				default:
					more = false
				}
			}
			return recs, nil
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-g.closing:
			return nil, ErrClosed
		}
	}
}

// accept takes a fetch result: ok is false for one of a partition no
// longer owned (or of an earlier fetcher of it).
func (g *GroupConsumer) accept(r fetchResult) ([]ConsumedRecord, error, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	op := g.mu.owned[r.tp]
	if op == nil || op.token != r.token {
		return nil, nil, false
	}
	if r.err != nil {
		return nil, fmt.Errorf("client: group %s, %s/%d: %w", g.cfg.Group, r.tp.Topic, r.tp.Partition, r.err), true
	}
	if r.next > op.position {
		op.position = r.next
	}
	return r.recs, nil, true
}

// handleEvents applies the membership loop's events.
func (g *GroupConsumer) handleEvents(ctx context.Context) error {
	for {
		ev, ok := g.events.pop()
		if !ok {
			return nil
		}
		switch {
		case ev.err != nil:
			return ev.err
		case ev.assignment != nil:
			g.applyAssignment(ctx, ev)
		case len(ev.lost) > 0:
			g.noOffset = nil
			if g.cfg.OnLost != nil {
				g.cfg.OnLost(ev.lost)
			} else if g.cfg.OnRevoked != nil {
				g.cfg.OnRevoked(ev.lost)
			}
		}
	}
}

// applyAssignment gives up the revoked partitions (fetchers stopped,
// OnRevoked, auto-commit), starts the new ones, calls OnAssigned and
// acknowledges.
func (g *GroupConsumer) applyAssignment(ctx context.Context, ev groupEvent) {
	want := map[TopicPartition]int64{}
	for _, ap := range ev.assignment.GetPartitions() {
		want[TopicPartition{ap.GetTopic(), ap.GetPartition()}] = ap.GetCommittedOffset()
	}
	g.mu.Lock()
	if ev.session != g.mu.session {
		g.mu.Unlock()
		return
	}
	var revoked []TopicPartition
	var stopping []*ownedPartition
	for tp, op := range g.mu.owned {
		if _, keep := want[tp]; !keep {
			revoked = append(revoked, tp)
			op.cancel()
			stopping = append(stopping, op)
		}
	}
	g.mu.Unlock()
	for _, op := range stopping {
		<-op.done
	}
	if len(revoked) > 0 {
		sortedTPs(revoked)
		if g.cfg.OnRevoked != nil {
			g.cfg.OnRevoked(revoked)
		}
		if !g.cfg.ManualCommit {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := g.commitPartitions(cctx, revoked); err != nil {
				g.c.logger.Warn("commit of revoked partitions failed", "group", g.cfg.Group, "err", err)
			}
			cancel()
		}
	}
	g.mu.Lock()
	for _, tp := range revoked {
		delete(g.mu.owned, tp)
	}
	if ev.session != g.mu.session {
		g.mu.Unlock()
		return
	}
	var added []TopicPartition
	var noOffset []TopicPartition
	for tp, committed := range want {
		if _, ok := g.mu.owned[tp]; ok {
			continue
		}
		added = append(added, tp)
		op := &ownedPartition{position: committed, committed: committed, done: make(chan struct{})}
		g.mu.nextTok++
		op.token = g.mu.nextTok
		g.mu.owned[tp] = op
		var start Offset
		switch {
		case committed >= 0:
			start = AtOffset(committed)
		case g.cfg.Reset == ResetEarliest:
			start = Earliest()
		case g.cfg.Reset == ResetLatest:
			start = Latest()
		default:
			noOffset = append(noOffset, tp)
			close(op.done)
			op.cancel = func() {}
			continue
		}
		fctx, cancel := context.WithCancel(context.Background())
		op.cancel = cancel
		go g.fetch(fctx, tp, start, op)
	}
	owned := sortedTPs(slices.Collect(maps.Keys(g.mu.owned)))
	g.mu.Unlock()
	if len(noOffset) > 0 {
		sortedTPs(noOffset)
		g.noOffset = fmt.Errorf("%w: group %s has no committed offset for %v and the reset policy is none", ErrNoOffset, g.cfg.Group, noOffset)
	}
	if len(added) > 0 && g.cfg.OnAssigned != nil {
		g.cfg.OnAssigned(sortedTPs(added))
	}
	select {
	case g.acks <- groupAck{session: ev.session, epoch: ev.assignment.GetEpoch(), owned: owned}:
	default: // only stale acks fill it; the membership loop drains them
	}
}

// fetch reads one owned partition until ctx ends, handing what it reads
// to Poll.
func (g *GroupConsumer) fetch(ctx context.Context, tp TopicPartition, start Offset, op *ownedPartition) {
	defer close(op.done)
	// The partition consumer applies the reset policy when the committed
	// offset is no longer in the log (retention).
	fetch := g.cfg.Fetch
	fetch.Reset = g.cfg.Reset
	pc := g.c.ConsumePartition(tp.Topic, tp.Partition, start, fetch)
	defer pc.Close()
	if g.positionOf(op) < 0 {
		// Where the reset policy starts (the log end, say) is the
		// position until records come: a revocation before any commits
		// it, so the next owner continues there rather than at a later
		// log end, which would skip what was written meanwhile.
		if err := pc.resolveStart(ctx); err != nil {
			if ctx.Err() == nil {
				select {
				case g.results <- fetchResult{tp: tp, token: op.token, next: -1, err: err}:
				case <-ctx.Done():
				}
			}
			return
		}
		g.mu.Lock()
		if op.position < 0 {
			op.position = pc.Position()
		}
		g.mu.Unlock()
	}
	for {
		recs, err := pc.Poll(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil && len(recs) == 0 {
			continue
		}
		select {
		case g.results <- fetchResult{tp: tp, token: op.token, recs: recs, next: pc.Position(), err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// positionOf returns op's position.
func (g *GroupConsumer) positionOf(op *ownedPartition) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return op.position
}

// Commit commits the positions of the records Poll returned, for every
// owned partition that advanced since its last commit. It returns once
// they are stored (the coordinator coalesces commits: up to its commit
// interval, 100 ms by default). ErrFenced: the member was removed.
func (g *GroupConsumer) Commit(ctx context.Context) error {
	return g.commitPartitions(ctx, nil)
}

// commitPartitions commits the positions of tps (all owned when nil).
func (g *GroupConsumer) commitPartitions(ctx context.Context, tps []TopicPartition) error {
	g.mu.Lock()
	offs := map[TopicPartition]int64{}
	if tps == nil {
		tps = slices.Collect(maps.Keys(g.mu.owned))
	}
	for _, tp := range tps {
		if op := g.mu.owned[tp]; op != nil && op.position >= 0 && op.position != op.committed {
			offs[tp] = op.position
		}
	}
	g.mu.Unlock()
	if len(offs) == 0 {
		return nil
	}
	return g.CommitOffsets(ctx, offs)
}

// CommitOffsets commits offsets (the offset of the next record to
// consume, per partition) of partitions the consumer owns. It retries
// while the coordinator moves, within ctx.
func (g *GroupConsumer) CommitOffsets(ctx context.Context, offsets map[TopicPartition]int64) error {
	req := &stratav1.CommitOffsetsRequest{Group: g.cfg.Group}
	for tp, o := range offsets {
		req.Offsets = append(req.Offsets, &stratav1.PartitionOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: o})
	}
	for attempt := 0; ; attempt++ {
		g.mu.Lock()
		id, gen, addr := g.mu.memberID, g.mu.generation, g.mu.coordinator
		g.mu.Unlock()
		if req.MemberId != "" && (id != req.MemberId || gen != req.Generation) {
			// Fenced and joined again meanwhile: these offsets are the
			// old membership's.
			return fmt.Errorf("%w: member %s left group %s while its commit was retried", ErrFenced, req.MemberId, g.cfg.Group)
		}
		req.MemberId, req.Generation = id, gen
		err := status.Error(codes.Unavailable, "client: not joined yet")
		if req.MemberId != "" && addr != "" {
			var cc *grpc.ClientConn
			if cc, err = g.c.conn(addr); err == nil {
				_, err = stratav1.NewGroupServiceClient(cc).CommitOffsets(ctx, req)
			}
		}
		switch {
		case err == nil:
			g.mu.Lock()
			for tp, o := range offsets {
				if op := g.mu.owned[tp]; op != nil {
					op.committed = o
				}
			}
			g.mu.Unlock()
			return nil
		case errors.Is(err, ErrClosed):
			return err
		case status.Code(err) == codes.FailedPrecondition:
			return fmt.Errorf("%w: %s", ErrFenced, status.Convert(err).Message())
		case !retriable(err) && !errors.Is(err, ErrNoBroker):
			return err
		}
		t := time.NewTimer(backoff(100*time.Millisecond, min(attempt+1, 4)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("client: commit to group %s: %w (last error: %v)", g.cfg.Group, ctx.Err(), err)
		}
	}
}

// Close gives up the owned partitions (OnRevoked; with auto-commit their
// positions are committed), leaves the group and stops the consumer.
func (g *GroupConsumer) Close() error {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		parts := sortedTPs(slices.Collect(maps.Keys(g.mu.owned)))
		var stopping []*ownedPartition
		for _, op := range g.mu.owned {
			op.cancel()
			stopping = append(stopping, op)
		}
		g.mu.Unlock()
		for _, op := range stopping {
			<-op.done
		}
		if len(parts) > 0 && g.cfg.OnRevoked != nil {
			g.cfg.OnRevoked(parts)
		}
		if !g.cfg.ManualCommit {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			g.closeErr = g.Commit(ctx)
			cancel()
		}
		close(g.closing)
		<-g.loopDone
	})
	return g.closeErr
}
