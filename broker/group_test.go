package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/internal/etcdtest"
	"github.com/strata-stream/strata/metadata"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// rawMember is a group member speaking the Join protocol by hand.
type rawMember struct {
	t      *testing.T
	stream stratav1.GroupService_JoinClient
	cancel context.CancelFunc
	sendMu sync.Mutex
	id     string
	gen    int64
	msgs   chan *stratav1.JoinResponse
	errc   chan error
	// beat stops the background heartbeats when closed.
	beat chan struct{}
}

func (b *testBroker) groups() stratav1.GroupServiceClient {
	return stratav1.NewGroupServiceClient(b.conn)
}

// openJoin opens a Join stream and sends join.
func (b *testBroker) openJoin(t *testing.T, join *stratav1.JoinGroup) *rawMember {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := b.groups().Join(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := &rawMember{t: t, stream: stream, cancel: cancel, msgs: make(chan *stratav1.JoinResponse, 100), errc: make(chan error, 1), beat: make(chan struct{})}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				m.errc <- err
				return
			}
			if r.GetHeartbeatAck() != nil {
				continue
			}
			m.msgs <- r
		}
	}()
	m.send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Join{Join: join}})
	return m
}

// joinRaw joins a member and waits for Joined; it heartbeats every
// interval until stopBeating.
func (b *testBroker) joinRaw(t *testing.T, join *stratav1.JoinGroup, interval time.Duration) *rawMember {
	t.Helper()
	m := b.openJoin(t, join)
	r := m.next(5 * time.Second)
	if r.GetJoined() == nil {
		t.Fatalf("first response %v, want Joined", r)
	}
	m.id, m.gen = r.GetJoined().GetMemberId(), r.GetJoined().GetGeneration()
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-m.beat:
				return
			case <-tick.C:
				m.send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Heartbeat{Heartbeat: &stratav1.GroupHeartbeat{}}})
			}
		}
	}()
	return m
}

func (m *rawMember) stopBeating() { close(m.beat) }

func (m *rawMember) send(r *stratav1.JoinRequest) {
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	_ = m.stream.Send(r)
}

func (m *rawMember) next(timeout time.Duration) *stratav1.JoinResponse {
	m.t.Helper()
	select {
	case r := <-m.msgs:
		return r
	case err := <-m.errc:
		m.t.Fatalf("member stream ended: %v", err)
	case <-time.After(timeout):
		m.t.Fatalf("no response within %s", timeout)
	}
	return nil
}

func (m *rawMember) assignment(timeout time.Duration) *stratav1.Assignment {
	m.t.Helper()
	for {
		if a := m.next(timeout).GetAssignment(); a != nil {
			return a
		}
	}
}

func (m *rawMember) ack(a *stratav1.Assignment) {
	var owned []topicPartition
	for _, p := range a.GetPartitions() {
		owned = append(owned, topicPartition{Topic: p.GetTopic(), Partition: p.GetPartition()})
	}
	m.send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Ack{Ack: &stratav1.AssignmentAck{Epoch: a.GetEpoch(), Owned: groupTopicPartitions(owned)}}})
}

// streamErr waits for the stream to end and returns its error.
func (m *rawMember) streamErr(timeout time.Duration) error {
	m.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case <-m.msgs:
		case err := <-m.errc:
			return err
		case <-deadline:
			m.t.Fatalf("stream still open after %s", timeout)
		}
	}
}

func partitionsOf(a *stratav1.Assignment) []int32 {
	var out []int32
	for _, p := range a.GetPartitions() {
		out = append(out, p.GetPartition())
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (m *rawMember) commit(t *testing.T, b *testBroker, group string, offs map[int32]int64, topic string) error {
	t.Helper()
	req := &stratav1.CommitOffsetsRequest{Group: group, MemberId: m.id, Generation: m.gen}
	for p, o := range offs {
		req.Offsets = append(req.Offsets, &stratav1.PartitionOffset{Topic: topic, Partition: p, Offset: o})
	}
	_, err := b.groups().CommitOffsets(rpcCtx(t), req)
	return err
}

func startGroupBroker(t *testing.T, interval time.Duration) *testBroker {
	return startBroker(t, func(c *Config) {
		c.ReconcileInterval = 200 * time.Millisecond
		c.Groups = GroupConfig{SessionTimeout: 3 * time.Second, CommitInterval: interval}
	})
}

// TestGroupRebalanceRevokesBeforeAssigning: a second member gets half of
// the partitions only after the first acknowledged giving them up, with
// the offset the first committed; the first can no longer commit them.
func TestGroupRebalanceRevokesBeforeAssigning(t *testing.T) {
	b := startGroupBroker(t, 20*time.Millisecond)
	b.createTopic(t, "gt", 4, nil)
	join := &stratav1.JoinGroup{Group: "g1", Topics: []string{"gt"}}
	a := b.joinRaw(t, join, 500*time.Millisecond)
	first := a.assignment(5 * time.Second)
	if got := partitionsOf(first); fmt.Sprint(got) != "[0 1 2 3]" {
		t.Fatalf("first member's assignment %v, want all four", got)
	}
	for _, p := range first.GetPartitions() {
		if p.GetCommittedOffset() != -1 {
			t.Fatalf("new group: committed offset %d, want -1", p.GetCommittedOffset())
		}
	}
	a.ack(first)
	if err := a.commit(t, b, "g1", map[int32]int64{0: 5, 1: 6, 2: 7, 3: 8}, "gt"); err != nil {
		t.Fatal(err)
	}

	c := b.joinRaw(t, join, 500*time.Millisecond)
	// c gets nothing yet: a still holds every partition.
	ca := c.assignment(5 * time.Second)
	if len(ca.GetPartitions()) != 0 {
		t.Fatalf("second member granted %v before the first gave anything up", partitionsOf(ca))
	}
	c.ack(ca)
	shrink := a.assignment(5 * time.Second)
	kept := partitionsOf(shrink)
	if len(kept) != 2 {
		t.Fatalf("first member keeps %v, want two partitions", kept)
	}
	select {
	case r := <-c.msgs:
		t.Fatalf("second member got %v before the first acknowledged", r)
	case <-time.After(300 * time.Millisecond):
	}
	// a commits its revoked partitions before acknowledging: accepted.
	var moved []int32
	for p := range int32(4) {
		if kept[0] != p && kept[1] != p {
			moved = append(moved, p)
		}
	}
	if err := a.commit(t, b, "g1", map[int32]int64{moved[0]: 50}, "gt"); err != nil {
		t.Fatalf("commit of a partition being revoked: %v", err)
	}
	a.ack(shrink)
	got := c.assignment(5 * time.Second)
	if fmt.Sprint(partitionsOf(got)) != fmt.Sprint(moved) {
		t.Fatalf("second member got %v, want the moved %v", partitionsOf(got), moved)
	}
	for _, p := range got.GetPartitions() {
		want := map[int32]int64{moved[0]: 50, moved[1]: 5 + int64(moved[1])}[p.GetPartition()]
		if p.GetCommittedOffset() != want {
			t.Fatalf("partition %d handed over at committed %d, want %d", p.GetPartition(), p.GetCommittedOffset(), want)
		}
	}
	c.ack(got)
	err := a.commit(t, b, "g1", map[int32]int64{moved[0]: 99}, "gt")
	wantCode(t, "commit of a partition given away", err, codes.FailedPrecondition)
	if err := c.commit(t, b, "g1", map[int32]int64{moved[0]: 60}, "gt"); err != nil {
		t.Fatal(err)
	}
	offs, err := b.srv.store.GroupOffsets(rpcCtx(t), "g1")
	if err != nil {
		t.Fatal(err)
	}
	if offs[topicPartition{Topic: "gt", Partition: moved[0]}] != 60 {
		t.Fatalf("committed offsets %v", offs)
	}

	// Describe sees both members and their partitions.
	d, err := b.groups().DescribeGroup(rpcCtx(t), &stratav1.DescribeGroupRequest{Group: "g1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.GetMembers()) != 2 || len(d.GetPartitions()) != 4 || d.GetCoordinatorId() != 1 {
		t.Fatalf("describe: %v", d)
	}
	// A leave hands the partitions to the other member at once.
	a.send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Leave{Leave: &stratav1.LeaveGroup{}}})
	if err := a.streamErr(5 * time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("stream after leave: %v", err)
	}
	if got := c.assignment(5 * time.Second); len(got.GetPartitions()) != 4 {
		t.Fatalf("after the leave the other member has %v, want all four", partitionsOf(got))
	}
}

// TestGroupZombieIsFenced: a member that stops heartbeating is removed
// after its session timeout (its stream ends FAILED_PRECONDITION), its
// partitions go to the other member, and its commits are rejected and
// change nothing.
func TestGroupZombieIsFenced(t *testing.T) {
	b := startGroupBroker(t, 20*time.Millisecond)
	b.createTopic(t, "zt", 2, nil)
	zombie := b.joinRaw(t, &stratav1.JoinGroup{Group: "gz", Topics: []string{"zt"}, SessionTimeoutMs: 1000}, 200*time.Millisecond)
	za := zombie.assignment(5 * time.Second)
	zombie.ack(za)
	if err := zombie.commit(t, b, "gz", map[int32]int64{0: 3, 1: 4}, "zt"); err != nil {
		t.Fatal(err)
	}
	other := b.joinRaw(t, &stratav1.JoinGroup{Group: "gz", Topics: []string{"zt"}, SessionTimeoutMs: 3000}, 200*time.Millisecond)
	oa := other.assignment(5 * time.Second)
	other.ack(oa)
	zs := zombie.assignment(5 * time.Second) // asked to give one up; it never answers
	if len(zs.GetPartitions()) != 1 {
		t.Fatalf("zombie keeps %v", partitionsOf(zs))
	}
	zombie.stopBeating()
	stopped := time.Now()
	err := zombie.streamErr(5 * time.Second)
	wantCode(t, "zombie's stream", err, codes.FailedPrecondition)
	if took := time.Since(stopped); took > 1500*time.Millisecond {
		t.Fatalf("zombie removed %s after its last heartbeat, session timeout 1s", took)
	}
	got := other.assignment(5 * time.Second)
	if len(got.GetPartitions()) != 2 {
		t.Fatalf("survivor has %v, want both partitions", partitionsOf(got))
	}
	for _, p := range got.GetPartitions() {
		if want := map[int32]int64{0: 3, 1: 4}[p.GetPartition()]; p.GetCommittedOffset() != want {
			t.Fatalf("partition %d at %d, want the zombie's last commit %d", p.GetPartition(), p.GetCommittedOffset(), want)
		}
	}
	err = zombie.commit(t, b, "gz", map[int32]int64{0: 100, 1: 100}, "zt")
	wantCode(t, "zombie's commit", err, codes.FailedPrecondition)
	if !strings.Contains(status.Convert(err).Message(), "not in group") {
		t.Fatalf("zombie's commit: %v", err)
	}
	offs, err := b.srv.store.GroupOffsets(rpcCtx(t), "gz")
	if err != nil {
		t.Fatal(err)
	}
	if offs[topicPartition{Topic: "zt", Partition: 0}] != 3 || offs[topicPartition{Topic: "zt", Partition: 1}] != 4 {
		t.Fatalf("offsets after the zombie's commit: %v", offs)
	}
	// Rejoining with its old identity is refused too.
	re := b.openJoin(t, &stratav1.JoinGroup{Group: "gz", Topics: []string{"zt"}, MemberId: zombie.id, Generation: zombie.gen})
	wantCode(t, "zombie's rejoin", re.streamErr(5*time.Second), codes.FailedPrecondition)
}

// TestGroupUnacknowledgedAssignmentDoesNotBlockRebalance: a member that
// keeps heartbeating but never acknowledges an assignment (its
// application stopped polling) cannot hold on to partitions another
// member needs: once a revocation waits for its acknowledgement, it is
// removed after its rebalance timeout and the other member gets them.
func TestGroupUnacknowledgedAssignmentDoesNotBlockRebalance(t *testing.T) {
	b := startGroupBroker(t, 20*time.Millisecond)
	b.createTopic(t, "ut", 4, nil)
	stuck := b.joinRaw(t, &stratav1.JoinGroup{Group: "gu", Topics: []string{"ut"}, RebalanceTimeoutMs: 1000}, 200*time.Millisecond)
	if a := stuck.assignment(5 * time.Second); len(a.GetPartitions()) != 4 {
		t.Fatalf("first member's assignment %v, want all four", partitionsOf(a))
	} // never acknowledged
	other := b.joinRaw(t, &stratav1.JoinGroup{Group: "gu", Topics: []string{"ut"}}, 200*time.Millisecond)
	joinedAt := time.Now()
	other.ack(other.assignment(5 * time.Second)) // nothing yet: the first holds all four
	wantCode(t, "stream of the member that never acknowledged", stuck.streamErr(5*time.Second), codes.FailedPrecondition)
	if took := time.Since(joinedAt); took < 900*time.Millisecond {
		t.Fatalf("removed %s after the rebalance began, before its rebalance timeout (1s)", took)
	}
	if got := other.assignment(5 * time.Second); len(got.GetPartitions()) != 4 {
		t.Fatalf("the other member has %v, want all four", partitionsOf(got))
	}
}

// TestGroupStateStaysWritable: joins that would make the group's state
// too large for one etcd request (members subscribing to many long topic
// names) are refused with RESOURCE_EXHAUSTED; the group keeps working:
// its members commit, and later joins are answered.
func TestGroupStateStaysWritable(t *testing.T) {
	b := startGroupBroker(t, 20*time.Millisecond)
	b.createTopic(t, "st", 2, nil)
	small := b.joinRaw(t, &stratav1.JoinGroup{Group: "gs", Topics: []string{"st"}}, 300*time.Millisecond)
	small.ack(small.assignment(5 * time.Second))
	var topics []string
	for i := range maxGroupTopics - 1 {
		topics = append(topics, fmt.Sprintf("%04d-%s", i, strings.Repeat("t", metadata.MaxTopicNameLength-5)))
	}
	refused := 0
	for range 8 { // 8 x 1000 x 249 bytes of topic names: 2 MB
		m := b.openJoin(t, &stratav1.JoinGroup{Group: "gs", Topics: append([]string{"st"}, topics...)})
		select {
		case r := <-m.msgs:
			if r.GetJoined() == nil {
				t.Fatalf("first response %v, want Joined", r)
			}
			go func() { // keep it alive
				for range time.Tick(300 * time.Millisecond) {
					m.send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Heartbeat{Heartbeat: &stratav1.GroupHeartbeat{}}})
				}
			}()
		case err := <-m.errc:
			wantCode(t, "join of a member too large for the state", err, codes.ResourceExhausted)
			refused++
		case <-time.After(5 * time.Second):
			t.Fatal("join neither answered nor refused within 5s")
		}
	}
	if refused == 0 {
		t.Fatal("every large member was admitted: the state would exceed etcd's request limit")
	}
	if err := small.commit(t, b, "gs", map[int32]int64{0: 1}, "st"); err != nil {
		t.Fatalf("commit after the refused joins: %v", err)
	}
	m := b.joinRaw(t, &stratav1.JoinGroup{Group: "gs", Topics: []string{"st"}}, 300*time.Millisecond)
	if m.id == "" {
		t.Fatal("small member not admitted")
	}
}

// TestGroupCommitsAreCoalesced: 40 members' worth of concurrent commits
// for a second cost at most one etcd write per commit interval.
func TestGroupCommitsAreCoalesced(t *testing.T) {
	const interval = 100 * time.Millisecond
	b := startGroupBroker(t, interval)
	b.createTopic(t, "ct", 8, nil)
	m := b.joinRaw(t, &stratav1.JoinGroup{Group: "gc", Topics: []string{"ct"}}, 500*time.Millisecond)
	if a := m.assignment(5 * time.Second); len(a.GetPartitions()) != 8 {
		t.Fatalf("first assignment %v, want all 8 partitions", partitionsOf(a))
	} else {
		m.ack(a)
	}
	cli := b.srv.store.Client()
	rev := func() int64 {
		r, err := cli.Get(rpcCtx(t), "/probe")
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}
	time.Sleep(2 * interval) // the acknowledgement's state write is done
	before, start := rev(), time.Now()
	var wg sync.WaitGroup
	var commits atomic.Int64
	for w := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(start) < time.Second; i++ {
				if err := m.commit(t, b, "gc", map[int32]int64{int32(w % 8): int64(i)}, "ct"); err != nil {
					t.Error(err)
					return
				}
				commits.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	writes := etcdtest.GroupWrites(t, cli, b.srv.store.Prefix(), "gc", before, rev())
	bound := int(elapsed/interval) + 1
	t.Logf("%d commits in %s: %d etcd writes of the group (bound %d)", commits.Load(), elapsed.Round(time.Millisecond), writes, bound)
	if writes > bound || writes == 0 {
		t.Fatalf("%d etcd writes in %s, want 1 to %d (one per %s)", writes, elapsed, bound, interval)
	}
	if commits.Load() < int64(3*bound) {
		t.Fatalf("only %d commits in %s: too few to show coalescing (want at least %d)", commits.Load(), elapsed, 3*bound)
	}
}

// TestGroupAdmin: reset and delete are refused while the group has
// members, and work once it is empty; invalid requests are
// INVALID_ARGUMENT.
func TestGroupAdmin(t *testing.T) {
	b := startGroupBroker(t, 20*time.Millisecond)
	b.createTopic(t, "at", 2, nil)
	b.produceOK(t, "at", 0, batch("a", "b", "c"))
	m := b.joinRaw(t, &stratav1.JoinGroup{Group: "ga", Topics: []string{"at"}, Assignor: "range"}, 500*time.Millisecond)
	m.ack(m.assignment(5 * time.Second))
	if err := m.commit(t, b, "ga", map[int32]int64{0: 1}, "at"); err != nil {
		t.Fatal(err)
	}
	reset := &stratav1.ResetOffsetsRequest{Group: "ga", Offsets: []*stratav1.PartitionOffset{{Topic: "at", Partition: 0, Offset: 0}}}
	_, err := b.groups().ResetOffsets(rpcCtx(t), reset)
	wantCode(t, "reset with a member", err, codes.FailedPrecondition)
	if !strings.Contains(err.Error(), "stop its consumers") {
		t.Fatalf("reset refusal: %v", err)
	}
	_, err = b.groups().DeleteGroup(rpcCtx(t), &stratav1.DeleteGroupRequest{Group: "ga"})
	wantCode(t, "delete with a member", err, codes.FailedPrecondition)
	// Another member asking for another assignor is refused.
	bad := b.openJoin(t, &stratav1.JoinGroup{Group: "ga", Topics: []string{"at"}, Assignor: "roundrobin"})
	wantCode(t, "assignor mismatch", bad.streamErr(5*time.Second), codes.InvalidArgument)

	d, err := b.groups().DescribeGroup(rpcCtx(t), &stratav1.DescribeGroupRequest{Group: "ga"})
	if err != nil {
		t.Fatal(err)
	}
	p0 := d.GetPartitions()[0]
	if p0.GetCommittedOffset() != 1 || p0.GetLogEndOffset() != 3 || p0.GetLag() != 2 || p0.GetMemberId() != m.id || d.GetAssignor() != "range" {
		t.Fatalf("describe: %v", d)
	}
	// The lag metric, as the coordinator measures it: 3 records, 1
	// committed.
	reg := prometheus.NewRegistry()
	reg.MustRegister(&groupCollector{c: b.srv.groups})
	b.srv.groups.measureLag(rpcCtx(t))
	if got := gatheredValue(t, reg, "strata_group_lag", map[string]string{"group": "ga", "topic": "at", "partition": "0"}); got != 2 {
		t.Fatalf("strata_group_lag = %v, want 2", got)
	}
	if got := gatheredValue(t, reg, "strata_group_members", map[string]string{"group": "ga"}); got != 1 {
		t.Fatalf("strata_group_members = %v, want 1", got)
	}
	l, err := b.groups().ListGroups(rpcCtx(t), &stratav1.ListGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.GetGroups()) != 1 || l.GetGroups()[0].GetMembers() != 1 {
		t.Fatalf("list: %v", l)
	}

	m.send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Leave{Leave: &stratav1.LeaveGroup{}}})
	_ = m.streamErr(5 * time.Second)
	// The leave reaches etcd with the next flush.
	var resp *stratav1.ResetOffsetsResponse
	for deadline := time.Now().Add(5 * time.Second); ; {
		if resp, err = b.groups().ResetOffsets(rpcCtx(t), reset); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetPrevious()) != 1 || resp.GetPrevious()[0].GetOffset() != 1 {
		t.Fatalf("reset's previous offsets: %v", resp)
	}
	// A member joining after the reset starts from the reset offset.
	m2 := b.joinRaw(t, &stratav1.JoinGroup{Group: "ga", Topics: []string{"at"}}, 500*time.Millisecond)
	a := m2.assignment(5 * time.Second)
	for _, p := range a.GetPartitions() {
		if p.GetPartition() == 0 && p.GetCommittedOffset() != 0 {
			t.Fatalf("after reset partition 0 starts at %d, want 0", p.GetCommittedOffset())
		}
	}
	m2.send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Leave{Leave: &stratav1.LeaveGroup{}}})
	_ = m2.streamErr(5 * time.Second)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err = b.groups().DeleteGroup(rpcCtx(t), &stratav1.DeleteGroupRequest{Group: "ga"}); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.groups().DescribeGroup(rpcCtx(t), &stratav1.DescribeGroupRequest{Group: "ga"})
	wantCode(t, "describe deleted group", err, codes.NotFound)

	for name, j := range map[string]*stratav1.JoinGroup{
		"bad group":        {Group: "a/b", Topics: []string{"at"}},
		"no topics":        {Group: "g"},
		"bad topic":        {Group: "g", Topics: []string{".."}},
		"unknown assignor": {Group: "g", Topics: []string{"at"}, Assignor: "sticky-ish"},
		"new with owned":   {Group: "g", Topics: []string{"at"}, Owned: []*stratav1.TopicPartitions{{Topic: "at", Partitions: []int32{0}}}},
	} {
		wantCode(t, name, b.openJoin(t, j).streamErr(5*time.Second), codes.InvalidArgument)
	}
	_, err = b.groups().CommitOffsets(rpcCtx(t), &stratav1.CommitOffsetsRequest{Group: "g", MemberId: "x", Offsets: []*stratav1.PartitionOffset{{Topic: "at", Offset: -1}}})
	wantCode(t, "negative offset", err, codes.InvalidArgument)
}

// TestGroupTakeover: a coordinator that loads a group from etcd (its last
// coordinator's lease gone) keeps its members: one rejoining with its id,
// generation and partitions keeps them; a new member gets nothing another
// member may still hold until every loaded member rejoined or expired; an
// id etcd never held is refused.
func TestGroupTakeover(t *testing.T) {
	b := startGroupBroker(t, 20*time.Millisecond)
	b.createTopic(t, "tt", 4, nil)
	ctx := rpcCtx(t)
	cli := b.srv.store.Client()
	lease, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	fence, err := b.srv.store.AcquireGroupCoordinator(ctx, "gt", 7, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	st := &metadata.GroupState{Group: "gt", Epoch: 4, Assignor: AssignorCooperativeSticky, Members: []metadata.GroupMember{
		{ID: "m-a", Generation: 2, Topics: []string{"tt"}, SessionTimeoutMs: 2000, RebalanceTimeoutMs: 60000, Assigned: map[string][]int32{"tt": {0, 1}}},
		{ID: "m-b", Generation: 3, Topics: []string{"tt"}, SessionTimeoutMs: 2000, RebalanceTimeoutMs: 60000, Assigned: map[string][]int32{"tt": {2, 3}}},
	}}
	if err := b.srv.store.CommitGroup(ctx, fence, st, map[topicPartition]int64{{Topic: "tt", Partition: 0}: 11}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil { // the old coordinator dies
		t.Fatal(err)
	}
	wantCode(t, "unknown id", b.openJoin(t, &stratav1.JoinGroup{Group: "gt", Topics: []string{"tt"}, MemberId: "m-x", Generation: 1}).streamErr(5*time.Second), codes.FailedPrecondition)

	a := b.openJoin(t, &stratav1.JoinGroup{Group: "gt", Topics: []string{"tt"}, MemberId: "m-a", Generation: 2,
		Owned: []*stratav1.TopicPartitions{{Topic: "tt", Partitions: []int32{0, 1}}}})
	if j := a.next(5 * time.Second).GetJoined(); j.GetMemberId() != "m-a" || j.GetGeneration() != 2 {
		t.Fatalf("rejoin answered %v", j)
	}
	aa := a.assignment(5 * time.Second)
	if got := fmt.Sprint(partitionsOf(aa)); got != "[0 1]" {
		t.Fatalf("rejoined member has %s, want its [0 1]", got)
	}
	if aa.GetPartitions()[0].GetCommittedOffset() != 11 {
		t.Fatalf("partition 0 at %d, want 11", aa.GetPartitions()[0].GetCommittedOffset())
	}
	a.ack(aa)
	go func() { // keep a alive
		for range time.Tick(300 * time.Millisecond) {
			a.send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Heartbeat{Heartbeat: &stratav1.GroupHeartbeat{}}})
		}
	}()
	// A new member: nothing of m-b's (2, 3) while m-b may still consume them.
	n := b.joinRaw(t, &stratav1.JoinGroup{Group: "gt", Topics: []string{"tt"}}, 300*time.Millisecond)
	loadedAt := time.Now()
	na := n.assignment(5 * time.Second)
	if len(na.GetPartitions()) != 0 {
		t.Fatalf("new member granted %v while m-b has not rejoined", partitionsOf(na))
	}
	n.ack(na)
	// m-b never comes back: after its session (2 s from the takeover) its
	// partitions are free.
	for {
		r := n.next(6 * time.Second)
		if a := r.GetAssignment(); a != nil && len(a.GetPartitions()) > 0 {
			if time.Since(loadedAt) < time.Second {
				t.Fatalf("partitions granted %s after the takeover, before m-b's session could expire", time.Since(loadedAt))
			}
			for _, p := range a.GetPartitions() {
				if p.GetPartition() < 2 {
					t.Fatalf("new member got %d, which m-a holds", p.GetPartition())
				}
			}
			break
		}
	}
}

// gatheredValue returns the value of the metric name with labels (-1 when
// absent).
func gatheredValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func FuzzValidateJoin(f *testing.F) {
	f.Add("g", "m", int64(1), "t", int32(0), "range", uint32(0), uint32(0))
	f.Add("", "", int64(0), "", int32(-1), "", uint32(1<<31), uint32(1))
	f.Fuzz(func(t *testing.T, group, id string, gen int64, topic string, p int32, assignor string, session, rebalance uint32) {
		j := &stratav1.JoinGroup{Group: group, MemberId: id, Generation: gen, Topics: []string{topic}, Assignor: assignor,
			SessionTimeoutMs: session, RebalanceTimeoutMs: rebalance, Owned: []*stratav1.TopicPartitions{{Topic: topic, Partitions: []int32{p}}}}
		name, req, err := validateJoin(j, 10*time.Second)
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) && !errors.Is(err, metadata.ErrInvalidGroupName) && !errors.Is(err, metadata.ErrInvalidTopicName) {
				t.Fatalf("error %v is not an invalid-argument error", err)
			}
			if status.Code(toStatus(err)) != codes.InvalidArgument {
				t.Fatalf("error %v maps to %v", err, status.Code(toStatus(err)))
			}
			return
		}
		if name != group || req.session < minSessionTimeout || req.session > maxSessionTimeout || req.rebalance < minSessionTimeout || req.rebalance > maxRebalanceTimeout {
			t.Fatalf("accepted %+v", req)
		}
		if _, ok := assignors[req.assignor]; req.assignor != "" && !ok {
			t.Fatalf("accepted assignor %q", req.assignor)
		}
	})
}

// FuzzValidateOffsets: a commit's or reset's offsets are accepted only
// with valid topic names and partitions and offsets that are not
// negative; anything else is INVALID_ARGUMENT.
func FuzzValidateOffsets(f *testing.F) {
	f.Add("t", int32(0), int64(5), "u", int32(3), int64(0))
	f.Add("", int32(-1), int64(-1), "a/b", int32(1), int64(1))
	f.Fuzz(func(t *testing.T, t1 string, p1 int32, o1 int64, t2 string, p2 int32, o2 int64) {
		list := []*stratav1.PartitionOffset{{Topic: t1, Partition: p1, Offset: o1}, {Topic: t2, Partition: p2, Offset: o2}}
		got, err := validateOffsets(list)
		if err != nil {
			if status.Code(toStatus(err)) != codes.InvalidArgument {
				t.Fatalf("error %v maps to %v", err, status.Code(toStatus(err)))
			}
			return
		}
		for tp, o := range got {
			if metadata.ValidateTopicName(tp.Topic) != nil || tp.Partition < 0 || o < 0 {
				t.Fatalf("accepted %s = %d", tp, o)
			}
		}
		if len(got) == 0 || len(got) > 2 {
			t.Fatalf("accepted %d offsets of 2", len(got))
		}
	})
}
