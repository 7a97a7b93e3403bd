package broker

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/strata-stream/strata/metadata"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// group is a consumer group this broker coordinates: its members, what
// each owns, the target assignment, and the committed offsets. Its
// methods are called by the members' stream handlers and by the group's
// loop (groupLoop); none does I/O under the lock.
//
// Ownership rule: a partition is held by at most one member. It is
// granted to a member only while no other member holds it; a member
// holds a partition from the assignment that grants it until it
// acknowledges an assignment without it (having stopped consuming and
// committed), or until it is removed. So no partition is ever consumed
// by two members the coordinator considers alive.
//
// Lock order: group.flushMu, coordinator.mu, group.mu, Server.mu.
type group struct {
	c     *coordinator
	name  string
	fence metadata.GroupFence
	// kick wakes the loop (a commit or state change to flush, an event
	// to act on); done is closed once the group is unloaded.
	kick chan struct{}
	done chan struct{}
	// flushMu serialises flushes, so that writes land in snapshot order
	// (held across the etcd write; before mu).
	flushMu sync.Mutex

	mu struct {
		sync.Mutex
		unloaded bool
		epoch    int64
		assignor string
		members  map[string]*member
		// holder is who holds each held partition.
		holder map[topicPartition]*member
		// unreported counts members loaded from etcd (after a takeover)
		// that have not rejoined: until it is zero nothing new is granted,
		// as they may still consume what the last coordinator gave them.
		unreported int
		// partitions is the partition count of each subscribed topic the
		// targets were computed from.
		partitions map[string]int32
		// offsets are the committed offsets, including those accepted and
		// waiting for the next flush (dirty).
		offsets    map[topicPartition]int64
		dirty      map[topicPartition]bool
		stateDirty bool
		// round is what the next flush resolves: commits wait on it.
		round *flushRound
		// persistedMembers is the member count of the state last written
		// (or loaded): 0 means a reset may have changed the offsets since.
		persistedMembers int
		lastFlush        time.Time
		// idleSince is when the group last became empty.
		idleSince time.Time
	}
}

// member is one member of a group, as its coordinator sees it.
type member struct {
	id         string
	generation int64
	clientID   string
	topics     []string
	session    time.Duration
	rebalance  time.Duration
	// deadline is when the member is removed without a heartbeat.
	deadline time.Time
	// persisted: the member is in a written state (a new coordinator
	// would know it), so it may be given partitions.
	persisted bool
	// joinAnswered: Joined was sent on the current stream.
	joinAnswered bool
	// reported is false for a member loaded from etcd until it rejoins;
	// loadedAssigned is what the state said it owned (the sticky
	// assignor's hint until then).
	reported       bool
	loadedAssigned []topicPartition
	held           map[topicPartition]bool
	target         map[topicPartition]bool
	// out is the member's stream (nil while disconnected).
	out *memberStream
	// epoch numbers the assignments sent to the member; pending is the
	// last one sent and not yet acknowledged; lastSent its partitions.
	epoch    int64
	pending  *pendingAssignment
	lastSent map[topicPartition]bool
}

type pendingAssignment struct {
	epoch int64
	// revoking: the assignment revokes partitions, or a revocation waits
	// for its acknowledgement. deadline: a revoking member that has not
	// acknowledged it by then is removed (the rebalance timeout).
	revoking bool
	deadline time.Time
}

// flushRound is one flush: done is closed once it is over, err its
// outcome (set before done is closed).
type flushRound struct {
	done chan struct{}
	err  error
}

func newFlushRound() *flushRound { return &flushRound{done: make(chan struct{})} }

// memberStream is the coordinator's side of a member's Join stream: the
// handler sends what is queued on ch until the group ends the stream with
// fail.
type memberStream struct {
	ch     chan *stratav1.JoinResponse
	closed chan struct{}
	once   sync.Once
	err    error // set before closed is closed; nil: end normally
}

// memberStreamQueue bounds the responses queued for a member: one that
// does not read them is cut off.
const memberStreamQueue = 64

func newMemberStream() *memberStream {
	return &memberStream{ch: make(chan *stratav1.JoinResponse, memberStreamQueue), closed: make(chan struct{})}
}

// send queues r without blocking; a member whose queue is full is cut
// off (it rejoins).
func (ms *memberStream) send(r *stratav1.JoinResponse) {
	select {
	case <-ms.closed:
	case ms.ch <- r:
	default:
		ms.fail(fmt.Errorf("%w: the member does not read its stream", ErrNotCoordinator))
	}
}

// fail ends the stream with err (nil: normally).
func (ms *memberStream) fail(err error) {
	ms.once.Do(func() {
		ms.err = err
		close(ms.closed)
	})
}

func newMemberID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// joinRequest is a validated JoinGroup.
type joinRequest struct {
	memberID   string
	generation int64
	owned      []topicPartition
	topics     []string
	assignor   string // "" when the member did not ask
	session    time.Duration
	rebalance  time.Duration
	clientID   string
}

// join admits a member (a new one, or one rejoining with its id and
// generation) with stream ms. A new member is answered once the state
// that lists it is written (the loop's next flush); a rejoining one at
// once.
func (g *group) join(req joinRequest, ms *memberStream, now time.Time) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.unloaded {
		return "", fmt.Errorf("%w: group %s moved", ErrNotCoordinator, g.name)
	}
	if req.assignor != "" && len(g.mu.members) > 0 && req.assignor != g.mu.assignor {
		return "", fmt.Errorf("%w: group %s uses the %s assignor; this member asks for %s", ErrInvalidRequest, g.name, g.mu.assignor, req.assignor)
	}
	if len(g.mu.members) == 0 {
		g.mu.assignor = req.assignor
		if g.mu.assignor == "" {
			g.mu.assignor = AssignorCooperativeSticky
		}
	}
	if req.memberID != "" {
		m := g.mu.members[req.memberID]
		if m == nil || m.generation != req.generation {
			return "", fmt.Errorf("%w: member %s (generation %d) is not in group %s: it left, or its session expired; join as a new member", ErrUnknownMember, req.memberID, req.generation, g.name)
		}
		if err := g.checkStateSizeLocked(req); err != nil {
			return "", err
		}
		if m.out != nil && m.out != ms {
			m.out.fail(fmt.Errorf("%w: the member opened a new stream", ErrNotCoordinator))
		}
		m.out, m.joinAnswered = ms, false
		m.deadline = now.Add(m.session)
		m.clientID = req.clientID
		claims := map[topicPartition]bool{}
		for _, tp := range req.owned {
			claims[tp] = true
		}
		if !m.reported {
			// A member of the previous coordinator: it owns what it says,
			// unless another member said so first.
			m.reported = true
			g.mu.unreported--
			for tp := range claims {
				if g.mu.holder[tp] == nil {
					g.grantLocked(m, tp)
				}
			}
		} else {
			// It cannot own more than it was given.
			for tp := range m.held {
				if !claims[tp] {
					g.releaseLocked(m, tp)
				}
			}
		}
		m.pending, m.lastSent = nil, nil
		if !slices.Equal(m.topics, req.topics) || m.session != req.session || m.rebalance != req.rebalance {
			m.topics, m.session, m.rebalance = req.topics, req.session, req.rebalance
			g.mu.epoch++
		}
		g.mu.stateDirty = true
		g.kickLocked()
		if m.persisted {
			g.answerJoinLocked(m)
		}
		g.recomputeLocked()
		g.reconcileAllLocked(now)
		return m.id, nil
	}
	if err := g.checkStateSizeLocked(req); err != nil {
		return "", err
	}
	g.mu.epoch++
	m := &member{
		id: newMemberID(), generation: g.mu.epoch, clientID: req.clientID, topics: req.topics,
		session: req.session, rebalance: req.rebalance, deadline: now.Add(req.session),
		reported: true, held: map[topicPartition]bool{}, target: map[topicPartition]bool{}, out: ms,
	}
	g.mu.members[m.id] = m
	g.mu.stateDirty = true
	g.kickLocked()
	return m.id, nil
}

// maxGroupStateBytes bounds a group's encoded state: with the offsets
// that share its transaction (up to 119 keys of at most ~600 bytes) it
// stays under etcd's default request limit of 1.5 MiB. A state etcd
// refuses would stop every write of the group, commits included.
const maxGroupStateBytes = 1 << 20

// checkStateSizeLocked refuses a join (ErrGroupTooLarge) after which the
// state could exceed maxGroupStateBytes, by an upper bound of its
// encoding: per member its fields, its topics (listed, and as keys of
// what it owns), and every partition of the subscribed topics once (a
// partition is owned by one member).
func (g *group) checkStateSizeLocked(req joinRequest) error {
	if m := g.mu.members[req.memberID]; m != nil && slices.Equal(m.topics, req.topics) {
		return nil // the same as in the state
	}
	memberBound := func(topics []string, clientID string) int {
		n := 300 + 6*len(clientID) // fields, ids, numbers; escaped bytes
		for _, t := range topics {
			n += 2*len(t) + 8
		}
		return n
	}
	size := 200 + len(g.name) + len(g.mu.assignor)
	union := map[string]bool{}
	for _, m := range g.mu.members {
		if m.id == req.memberID {
			continue
		}
		size += memberBound(m.topics, m.clientID)
		for _, t := range m.topics {
			union[t] = true
		}
	}
	size += memberBound(req.topics, req.clientID)
	for _, t := range req.topics {
		union[t] = true
	}
	for _, n := range g.c.s.topicPartitions(slices.Collect(maps.Keys(union))) {
		size += 11 * int(n)
	}
	if size > maxGroupStateBytes {
		return fmt.Errorf("%w: group %s: with this member its state could take %d bytes in etcd, above %d: fewer members or topics per member (or shorter topic names)", ErrGroupTooLarge, g.name, size, maxGroupStateBytes)
	}
	return nil
}

// answerJoinLocked sends Joined and the first assignment of this stream.
func (g *group) answerJoinLocked(m *member) {
	if m.out == nil || m.joinAnswered {
		return
	}
	m.joinAnswered = true
	m.out.send(&stratav1.JoinResponse{Response: &stratav1.JoinResponse_Joined{Joined: &stratav1.Joined{
		MemberId: m.id, Generation: m.generation,
		HeartbeatIntervalMs: uint32(heartbeatInterval(m.session) / time.Millisecond),
		SessionTimeoutMs:    uint32(m.session / time.Millisecond),
		Assignor:            g.mu.assignor,
	}}})
}

// heartbeatInterval is how often a member with this session timeout
// heartbeats: five chances before it expires.
func heartbeatInterval(session time.Duration) time.Duration {
	return max(session/5, 100*time.Millisecond)
}

// heartbeat renews a member's session. It fails with ErrUnknownMember
// once the member was removed, and with ErrNotCoordinator when ms is not
// the member's current stream.
func (g *group) heartbeat(id string, ms *memberStream, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, err := g.streamMemberLocked(id, ms)
	if err != nil {
		return err
	}
	m.deadline = now.Add(m.session)
	ms.send(&stratav1.JoinResponse{Response: &stratav1.JoinResponse_HeartbeatAck{HeartbeatAck: &stratav1.HeartbeatAck{}}})
	return nil
}

// streamMemberLocked returns the member whose current stream is ms.
func (g *group) streamMemberLocked(id string, ms *memberStream) (*member, error) {
	m := g.mu.members[id]
	switch {
	case m == nil:
		return nil, fmt.Errorf("%w: member %s is no longer in group %s", ErrUnknownMember, id, g.name)
	case m.out != ms:
		return nil, fmt.Errorf("%w: member %s of group %s uses a newer stream", ErrNotCoordinator, id, g.name)
	}
	return m, nil
}

// ack applies a member's acknowledgement of assignment epoch: what it
// no longer owns is released, and may go to others.
func (g *group) ack(id string, ms *memberStream, epoch int64, owned []topicPartition, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, err := g.streamMemberLocked(id, ms)
	if err != nil {
		return err
	}
	m.deadline = now.Add(m.session)
	if m.pending == nil || m.pending.epoch != epoch {
		return nil // stale: an earlier stream's, or repeated
	}
	keep := map[topicPartition]bool{}
	for _, tp := range owned {
		keep[tp] = true
	}
	for tp := range m.held {
		if !keep[tp] {
			g.releaseLocked(m, tp)
		}
	}
	m.pending = nil
	g.mu.stateDirty = true
	g.kickLocked()
	g.reconcileAllLocked(now)
	return nil
}

// disconnect forgets the stream of a member whose stream ended without a
// leave: the member stays until its session expires (it may rejoin).
func (g *group) disconnect(id string, ms *memberStream) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m := g.mu.members[id]; m != nil && m.out == ms {
		m.out, m.pending, m.lastSent = nil, nil, nil
	}
}

// leave removes a member at once.
func (g *group) leave(id string, ms *memberStream, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m := g.mu.members[id]; m != nil && m.out == ms {
		g.removeLocked(m, nil, now)
	}
}

// commit validates a member's commit and queues it for the next flush;
// it returns the round to wait for.
func (g *group) commit(id string, generation int64, offsets map[topicPartition]int64) (*flushRound, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.unloaded {
		return nil, fmt.Errorf("%w: group %s moved", ErrNotCoordinator, g.name)
	}
	m := g.mu.members[id]
	switch {
	case m == nil || m.generation != generation:
		return nil, fmt.Errorf("%w: member %s (generation %d) is not in group %s: its commit is rejected", ErrUnknownMember, id, generation, g.name)
	case !m.persisted || !m.reported:
		return nil, fmt.Errorf("%w: member %s has not (re)joined group %s on this coordinator yet", ErrUnavailable, id, g.name)
	}
	for tp := range offsets {
		if !m.held[tp] {
			return nil, fmt.Errorf("%w: member %s of group %s does not own %s", ErrNotOwner, id, g.name, tp)
		}
	}
	for tp, o := range offsets {
		g.mu.offsets[tp] = o
		g.mu.dirty[tp] = true
	}
	if g.c.metrics != nil {
		g.c.metrics.commits.Add(float64(len(offsets)))
	}
	g.kickLocked()
	return g.mu.round, nil
}

// expire removes members whose session or rebalance timeout passed and
// returns the earliest deadline left (zero when none).
func (g *group) expire(now time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	var next time.Time
	for _, m := range g.sortedMembersLocked() {
		switch {
		case !now.Before(m.deadline):
			g.c.s.logger.Info("group member session expired", "group", g.name, "member", m.id)
			g.removeLocked(m, fmt.Errorf("%w: member %s of group %s: session expired (no heartbeat for %s)", ErrUnknownMember, m.id, g.name, m.session), now)
			continue
		case m.pending != nil && m.pending.revoking && !now.Before(m.pending.deadline):
			g.c.s.logger.Info("group member missed its rebalance timeout", "group", g.name, "member", m.id)
			g.removeLocked(m, fmt.Errorf("%w: member %s of group %s did not acknowledge an assignment giving up partitions within %s", ErrUnknownMember, m.id, g.name, m.rebalance), now)
			continue
		}
		next = earlierOf(next, m.deadline)
		if m.pending != nil && m.pending.revoking {
			next = earlierOf(next, m.pending.deadline)
		}
	}
	return next
}

func earlierOf(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// setPartitions updates the subscribed topics' partition counts and, when
// they changed, the targets.
func (g *group) setPartitions(counts map[string]int32, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if maps.Equal(counts, g.mu.partitions) {
		return
	}
	g.mu.partitions = counts
	g.mu.epoch++
	g.mu.stateDirty = true
	g.recomputeLocked()
	g.reconcileAllLocked(now)
}

// subscribedTopics returns every topic some member subscribes to.
func (g *group) subscribedTopics() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	set := map[string]bool{}
	for _, m := range g.mu.members {
		for _, t := range m.topics {
			set[t] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// removeLocked removes m: what it held is free for the others. err ends
// its stream (nil: normally, after a leave).
func (g *group) removeLocked(m *member, err error, now time.Time) {
	delete(g.mu.members, m.id)
	if !m.reported {
		g.mu.unreported--
	}
	for tp := range m.held {
		g.releaseLocked(m, tp)
	}
	if m.out != nil {
		m.out.fail(err)
	}
	if len(g.mu.members) == 0 {
		g.mu.idleSince = now
	}
	g.mu.epoch++
	g.mu.stateDirty = true
	g.kickLocked()
	g.recomputeLocked()
	g.reconcileAllLocked(now)
}

func (g *group) grantLocked(m *member, tp topicPartition) {
	m.held[tp] = true
	g.mu.holder[tp] = m
}

func (g *group) releaseLocked(m *member, tp topicPartition) {
	delete(m.held, tp)
	if g.mu.holder[tp] == m {
		delete(g.mu.holder, tp)
	}
}

func (g *group) kickLocked() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

func (g *group) sortedMembersLocked() []*member {
	ms := slices.Collect(maps.Values(g.mu.members))
	sort.Slice(ms, func(i, j int) bool { return ms[i].id < ms[j].id })
	return ms
}

// recomputeLocked computes the target assignment of the persisted
// members.
func (g *group) recomputeLocked() {
	var in []assignMember
	for _, m := range g.sortedMembersLocked() {
		if !m.persisted {
			continue
		}
		cur := m.loadedAssigned
		if m.reported {
			cur = slices.Collect(maps.Keys(m.held))
		}
		in = append(in, assignMember{id: m.id, topics: m.topics, current: cur})
	}
	fn := assignors[g.mu.assignor]
	if fn == nil {
		fn = assignSticky
	}
	targets := fn(in, g.mu.partitions)
	for _, m := range g.mu.members {
		m.target = map[topicPartition]bool{}
		for _, tp := range targets[m.id] {
			m.target[tp] = true
		}
	}
}

// reconcileAllLocked moves every member toward its target.
func (g *group) reconcileAllLocked(now time.Time) {
	for _, m := range g.sortedMembersLocked() {
		g.reconcileLocked(m, now)
	}
}

// reconcileLocked sends m its next assignment when it has none pending:
// what it holds of its target, plus the target partitions nobody holds
// (none while members of the previous coordinator have not reported).
func (g *group) reconcileLocked(m *member, now time.Time) {
	if !m.persisted || m.out == nil || !m.joinAnswered {
		return
	}
	if m.pending != nil {
		// The revocation waits for the pending assignment's
		// acknowledgement, within the rebalance timeout: a member that
		// never acknowledges (its application stopped polling) must not
		// keep partitions others need forever.
		if !m.pending.revoking && g.mustRevokeLocked(m) {
			m.pending.revoking, m.pending.deadline = true, now.Add(m.rebalance)
		}
		return
	}
	desired := map[topicPartition]bool{}
	for tp := range m.held {
		if m.target[tp] {
			desired[tp] = true
		}
	}
	if g.mu.unreported == 0 {
		for tp := range m.target {
			if g.mu.holder[tp] == nil {
				desired[tp] = true
			}
		}
	}
	if m.lastSent != nil && maps.Equal(desired, m.lastSent) && maps.Equal(desired, m.held) {
		return
	}
	revoking := false
	for tp := range m.held {
		if !desired[tp] {
			revoking = true
		}
	}
	for tp := range desired {
		if !m.held[tp] {
			g.grantLocked(m, tp)
		}
	}
	m.epoch++
	m.pending = &pendingAssignment{epoch: m.epoch, revoking: revoking, deadline: now.Add(m.rebalance)}
	m.lastSent = desired
	list := slices.Collect(maps.Keys(desired))
	sortTPs(list)
	a := &stratav1.Assignment{Epoch: m.epoch, GroupEpoch: g.mu.epoch, Partitions: make([]*stratav1.AssignedPartition, 0, len(list))}
	for _, tp := range list {
		off := int64(-1)
		if o, ok := g.mu.offsets[tp]; ok {
			off = o
		}
		a.Partitions = append(a.Partitions, &stratav1.AssignedPartition{Topic: tp.Topic, Partition: tp.Partition, CommittedOffset: off})
	}
	m.out.send(&stratav1.JoinResponse{Response: &stratav1.JoinResponse_Assignment{Assignment: a}})
	if g.c.metrics != nil && revoking {
		g.c.metrics.revocations.Inc()
	}
}

// mustRevokeLocked reports whether m holds a partition outside its target.
func (g *group) mustRevokeLocked(m *member) bool {
	for tp := range m.held {
		if !m.target[tp] {
			return true
		}
	}
	return false
}

// snapshotLocked is the state to write.
func (g *group) snapshotLocked(now time.Time) *metadata.GroupState {
	st := &metadata.GroupState{Group: g.name, Epoch: g.mu.epoch, Assignor: g.mu.assignor, Members: []metadata.GroupMember{}, UpdatedMs: now.UnixMilli()}
	for _, m := range g.sortedMembersLocked() {
		gm := metadata.GroupMember{
			ID: m.id, Generation: m.generation, ClientID: m.clientID, Topics: m.topics,
			SessionTimeoutMs: m.session.Milliseconds(), RebalanceTimeoutMs: m.rebalance.Milliseconds(),
		}
		held := slices.Collect(maps.Keys(m.held))
		if !m.reported {
			held = m.loadedAssigned
		}
		if len(held) > 0 {
			gm.Assigned = map[string][]int32{}
			for _, tp := range held {
				gm.Assigned[tp.Topic] = append(gm.Assigned[tp.Topic], tp.Partition)
			}
			for _, ps := range gm.Assigned {
				slices.Sort(ps)
			}
		}
		st.Members = append(st.Members, gm)
	}
	return st
}
