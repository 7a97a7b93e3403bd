package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/client"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
)

// fakeCoordinator is one broker that leads both partitions of topic "t"
// (each holds records from offset 0 up to 10) and coordinates every
// group with a scripted Join handler.
type fakeCoordinator struct {
	stratav1.UnimplementedMetadataServiceServer
	stratav1.UnimplementedConsumeServiceServer
	stratav1.UnimplementedGroupServiceServer
	addr   string
	joinFn func(n int, s stratav1.GroupService_JoinServer) error

	mu      sync.Mutex
	joins   []*stratav1.JoinGroup
	commits []*stratav1.CommitOffsetsRequest
	events  []string // "commit t/0=7", "ack 2 [1]" in arrival order
	// commitErr, when set, answers commits.
	commitErr error
	// findHangs makes FindCoordinator hang until its caller gives up (a
	// broker that accepts connections but does not answer).
	findHangs bool
	// consumeErr, when set, may fail a partition's Consume.
	consumeErr func(partition int32) error
}

func (f *fakeCoordinator) GetMetadata(context.Context, *stratav1.GetMetadataRequest) (*stratav1.GetMetadataResponse, error) {
	return &stratav1.GetMetadataResponse{
		Brokers: []*stratav1.BrokerInfo{{Id: 1, Address: f.addr}},
		Topics: []*stratav1.TopicMetadata{{Name: "t", Partitions: []*stratav1.PartitionMetadata{
			{Partition: 0, LeaderId: 1}, {Partition: 1, LeaderId: 1}}}},
	}, nil
}

func (f *fakeCoordinator) ListOffsets(_ context.Context, r *stratav1.ListOffsetsRequest) (*stratav1.ListOffsetsResponse, error) {
	resp := &stratav1.ListOffsetsResponse{}
	for _, p := range r.GetPartitions() {
		off := int64(0)
		switch s := p.GetSpec().GetSpec().(type) {
		case *stratav1.OffsetSpec_Offset:
			off = s.Offset
		case *stratav1.OffsetSpec_Latest:
			off = 10
		}
		resp.Partitions = append(resp.Partitions, &stratav1.ListOffsetsResult{Topic: p.GetTopic(), Partition: p.GetPartition(), Offset: off, HighWatermark: 10})
	}
	return resp, nil
}

// Consume serves the records from the start offset to 10, one batch.
func (f *fakeCoordinator) Consume(r *stratav1.ConsumeRequest, s stratav1.ConsumeService_ConsumeServer) error {
	if f.consumeErr != nil {
		if err := f.consumeErr(r.GetPartition()); err != nil {
			return err
		}
	}
	from := r.GetStart().GetOffset()
	if from < 10 {
		var recs []segment.Record
		for range 10 - from {
			recs = append(recs, segment.Record{Value: []byte("v")})
		}
		b := segment.AppendBatch(nil, segment.NoProducer, recs)
		segment.SetBaseOffset(b, from)
		if err := s.Send(&stratav1.ConsumeResponse{Records: b, NextOffset: 10, HighWatermark: 10}); err != nil {
			return err
		}
	}
	<-s.Context().Done()
	return nil
}

func (f *fakeCoordinator) FindCoordinator(ctx context.Context, _ *stratav1.FindCoordinatorRequest) (*stratav1.FindCoordinatorResponse, error) {
	f.mu.Lock()
	hangs := f.findHangs
	f.mu.Unlock()
	if hangs {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &stratav1.FindCoordinatorResponse{BrokerId: 1, Address: f.addr}, nil
}

func (f *fakeCoordinator) Join(s stratav1.GroupService_JoinServer) error {
	r, err := s.Recv()
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.joins = append(f.joins, r.GetJoin())
	n := len(f.joins)
	f.mu.Unlock()
	return f.joinFn(n, s)
}

func (f *fakeCoordinator) CommitOffsets(_ context.Context, r *stratav1.CommitOffsetsRequest) (*stratav1.CommitOffsetsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commits = append(f.commits, r)
	for _, o := range r.GetOffsets() {
		f.events = append(f.events, fmt.Sprintf("commit %s/%d=%d", o.GetTopic(), o.GetPartition(), o.GetOffset()))
	}
	if f.commitErr != nil {
		return nil, f.commitErr
	}
	return &stratav1.CommitOffsetsResponse{}, nil
}

func (f *fakeCoordinator) event(e string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
}

func startCoordinator(t *testing.T, f *fakeCoordinator) *client.Client {
	t.Helper()
	serveFake(t, func(g *grpc.Server, addr string) {
		f.addr = addr
		stratav1.RegisterMetadataServiceServer(g, f)
		stratav1.RegisterConsumeServiceServer(g, f)
		stratav1.RegisterGroupServiceServer(g, f)
	})
	c, err := client.New(client.Config{Brokers: []string{f.addr}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func joined(id string, sessionMs uint32) *stratav1.JoinResponse {
	return &stratav1.JoinResponse{Response: &stratav1.JoinResponse_Joined{Joined: &stratav1.Joined{
		MemberId: id, Generation: 1, SessionTimeoutMs: sessionMs, HeartbeatIntervalMs: sessionMs / 5}}}
}

func assignment(epoch int64, committed map[int32]int64) *stratav1.JoinResponse {
	a := &stratav1.Assignment{Epoch: epoch}
	ps := make([]int32, 0, len(committed))
	for p := range committed {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	for _, p := range ps {
		a.Partitions = append(a.Partitions, &stratav1.AssignedPartition{Topic: "t", Partition: p, CommittedOffset: committed[p]})
	}
	return &stratav1.JoinResponse{Response: &stratav1.JoinResponse_Assignment{Assignment: a}}
}

// serveHeartbeats answers heartbeats and records acknowledgements until
// the stream ends or stop closes.
func (f *fakeCoordinator) serveHeartbeats(s stratav1.GroupService_JoinServer, acks chan<- *stratav1.AssignmentAck, answer bool) error {
	for {
		r, err := s.Recv()
		if err != nil {
			return err
		}
		switch {
		case r.GetHeartbeat() != nil && answer:
			if err := s.Send(&stratav1.JoinResponse{Response: &stratav1.JoinResponse_HeartbeatAck{HeartbeatAck: &stratav1.HeartbeatAck{}}}); err != nil {
				return err
			}
		case r.GetAck() != nil:
			var owned []int32
			for _, tps := range r.GetAck().GetOwned() {
				owned = append(owned, tps.GetPartitions()...)
			}
			slices.Sort(owned)
			f.event(fmt.Sprintf("ack %d %v", r.GetAck().GetEpoch(), owned))
			if acks != nil {
				acks <- r.GetAck()
			}
		case r.GetLeave() != nil:
			f.event("leave")
			return nil
		}
	}
}

// pollUntil polls g until cond holds (5 s at most).
func pollUntil(t *testing.T, g *client.GroupConsumer, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for !cond() {
		if _, err := g.Poll(ctx); err != nil {
			t.Fatalf("%s: Poll: %v", what, err)
		}
	}
}

// TestGroupConsumerRevokesBeforeAcknowledging: a revoked partition's
// fetcher stops, OnRevoked runs and its position is committed (auto
// commit) before the acknowledgement that gives it up; records of a
// partition are returned only while it is owned; Close commits, revokes
// and leaves.
func TestGroupConsumerRevokesBeforeAcknowledging(t *testing.T) {
	f := &fakeCoordinator{}
	acks := make(chan *stratav1.AssignmentAck, 10)
	f.joinFn = func(n int, s stratav1.GroupService_JoinServer) error {
		_ = s.Send(joined("m1", 3000))
		_ = s.Send(assignment(1, map[int32]int64{0: 5, 1: 8}))
		go func() {
			<-acks
			_ = s.Send(assignment(2, map[int32]int64{1: 8}))
		}()
		return f.serveHeartbeats(s, acks, true)
	}
	c := startCoordinator(t, f)
	var mu sync.Mutex
	var calls []string
	g, err := c.JoinGroup(client.GroupConfig{Group: "g", Topics: []string{"t"},
		OnAssigned: func(tps []client.TopicPartition) {
			mu.Lock()
			calls = append(calls, "assigned "+tpsString(tps))
			mu.Unlock()
		},
		OnRevoked: func(tps []client.TopicPartition) {
			mu.Lock()
			calls = append(calls, "revoked "+tpsString(tps))
			mu.Unlock()
			f.event("revoked " + tpsString(tps))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int32][]int64{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(g.Assignment()) != 1 || len(got[1]) < 2 {
		recs, err := g.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got[r.Partition] = append(got[r.Partition], r.Offset)
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[1], []int64{8, 9}) {
		t.Fatalf("partition 1 returned %v, want [8 9] (from its committed offset)", got[1])
	}
	if len(got[0]) > 0 && got[0][0] != 5 {
		t.Fatalf("partition 0 returned %v, want from 5", got[0])
	}
	f.mu.Lock()
	events := slices.Clone(f.events)
	f.mu.Unlock()
	// Partition 0: revoked, then (if any record was returned) committed,
	// then acknowledged without it.
	iRevoked, iAck := slices.Index(events, "revoked [t/0]"), slices.Index(events, "ack 2 [1]")
	if iRevoked < 0 || iAck < 0 || iRevoked > iAck {
		t.Fatalf("events %v: want OnRevoked of t/0 before the acknowledgement of epoch 2", events)
	}
	if len(got[0]) > 0 {
		if i := slices.Index(events, "commit t/0=10"); i < 0 || i > iAck {
			t.Fatalf("events %v: want t/0's position (10) committed before the acknowledgement", events)
		}
	}
	if events[len(events)-1] != "leave" || !slices.Contains(events, "commit t/1=10") {
		t.Fatalf("events %v: want t/1 committed at 10 on Close, then the leave", events)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(calls, []string{"assigned [t/0 t/1]", "revoked [t/0]", "revoked [t/1]"}) {
		t.Fatalf("callbacks %v", calls)
	}
}

func tpsString(tps []client.TopicPartition) string { return fmt.Sprint(tps) }

// TestGroupConsumerGivesUpWithoutHeartbeats: when no heartbeat is
// acknowledged for the session timeout, the consumer stops consuming its
// partitions (OnLost) without being told, and rejoins with its member id
// and nothing owned.
func TestGroupConsumerGivesUpWithoutHeartbeats(t *testing.T) {
	f := &fakeCoordinator{}
	f.joinFn = func(n int, s stratav1.GroupService_JoinServer) error {
		if n == 1 {
			_ = s.Send(joined("m1", 1000))
			_ = s.Send(assignment(1, map[int32]int64{0: 10}))
			return f.serveHeartbeats(s, nil, false) // never acknowledges a heartbeat
		}
		_ = s.Send(joined("m1", 1000))
		return f.serveHeartbeats(s, nil, true)
	}
	c := startCoordinator(t, f)
	var lostAt time.Time
	var mu sync.Mutex
	g, err := c.JoinGroup(client.GroupConfig{Group: "g", Topics: []string{"t"}, ManualCommit: true,
		OnLost: func(tps []client.TopicPartition) {
			mu.Lock()
			defer mu.Unlock()
			if lostAt.IsZero() {
				lostAt = time.Now()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	pollUntil(t, g, "assigned", func() bool { return len(g.Assignment()) == 1 })
	assignedAt := time.Now()
	pollUntil(t, g, "lost", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !lostAt.IsZero()
	})
	if took := lostAt.Sub(assignedAt); took > 1500*time.Millisecond {
		t.Fatalf("partitions given up %s after the last acknowledgement, session timeout 1s", took)
	}
	if len(g.Assignment()) != 0 {
		t.Fatalf("still owns %v", g.Assignment())
	}
	pollUntil(t, g, "rejoined", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.joins) >= 2
	})
	f.mu.Lock()
	re := f.joins[1]
	f.mu.Unlock()
	if re.GetMemberId() != "m1" || len(re.GetOwned()) != 0 {
		t.Fatalf("rejoin %v: want member m1 owning nothing", re)
	}
}

// TestGroupConsumerGivesUpWhileFindingTheCoordinator: when the stream
// breaks and the brokers then do not answer FindCoordinator, the consumer
// still stops consuming its partitions once no heartbeat was
// acknowledged for the session timeout (the coordinator that takes the
// group over may give them to another member by then), and Close does not
// wait for the unanswered call.
func TestGroupConsumerGivesUpWhileFindingTheCoordinator(t *testing.T) {
	f := &fakeCoordinator{}
	streamEnded := make(chan time.Time, 1)
	f.joinFn = func(n int, s stratav1.GroupService_JoinServer) error {
		_ = s.Send(joined("m1", 1000))
		_ = s.Send(assignment(1, map[int32]int64{0: 10}))
		go func() { _ = f.serveHeartbeats(s, nil, true) }()
		time.Sleep(300 * time.Millisecond)
		f.mu.Lock()
		f.findHangs = true
		f.mu.Unlock()
		streamEnded <- time.Now()
		return status.Error(codes.Unavailable, "coordinator going away")
	}
	c := startCoordinator(t, f)
	var lostAt time.Time
	var mu sync.Mutex
	g, err := c.JoinGroup(client.GroupConfig{Group: "g", Topics: []string{"t"}, ManualCommit: true,
		OnLost: func([]client.TopicPartition) {
			mu.Lock()
			defer mu.Unlock()
			if lostAt.IsZero() {
				lostAt = time.Now()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	pollUntil(t, g, "assigned", func() bool { return len(g.Assignment()) == 1 })
	pollUntil(t, g, "lost", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !lostAt.IsZero()
	})
	// The last acknowledged heartbeat was sent before the stream ended.
	if took := lostAt.Sub(<-streamEnded); took > 1500*time.Millisecond {
		t.Fatalf("partitions given up %s after the stream ended, session timeout 1s", took)
	}
	if len(g.Assignment()) != 0 {
		t.Fatalf("still owns %v", g.Assignment())
	}
	start := time.Now()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %s while FindCoordinator hung", took)
	}
}

// TestGroupConsumerReportsEveryFetchError: a partition's non-retriable
// fetch error is returned by Poll even when it arrives together with
// another partition's records (Poll gathers what is ready into one
// answer): it is not dropped, leaving the partition silently unconsumed.
func TestGroupConsumerReportsEveryFetchError(t *testing.T) {
	f := &fakeCoordinator{consumeErr: func(p int32) error {
		if p != 1 {
			return nil
		}
		time.Sleep(200 * time.Millisecond) // after partition 0's records
		return status.Error(codes.DataLoss, "partition 1 is corrupt")
	}}
	f.joinFn = func(n int, s stratav1.GroupService_JoinServer) error {
		_ = s.Send(joined("m1", 3000))
		_ = s.Send(assignment(1, map[int32]int64{0: 5, 1: 5}))
		return f.serveHeartbeats(s, nil, true)
	}
	c := startCoordinator(t, f)
	g, err := c.JoinGroup(client.GroupConfig{Group: "g", Topics: []string{"t"}, ManualCommit: true,
		// Both fetch results are waiting when Poll first looks.
		OnAssigned: func([]client.TopicPartition) { time.Sleep(time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := 0
	for {
		recs, err := g.Poll(ctx)
		if err != nil {
			if !strings.Contains(err.Error(), "t/1") || !strings.Contains(err.Error(), "partition 1 is corrupt") {
				t.Fatalf("Poll: %v, want partition 1's DataLoss", err)
			}
			break
		}
		got += len(recs)
	}
	if got != 5 {
		t.Fatalf("partition 0 returned %d records, want 5 (offsets 5 to 9)", got)
	}
}

// TestGroupConsumerCommitsResolvedStart: a partition without a committed
// offset starts where the reset policy puts it (latest: the log end, 10),
// and that is its position until records come: revoked before any, its
// position is committed, so that the next owner continues there instead
// of at a later log end (which would skip what was written meanwhile).
func TestGroupConsumerCommitsResolvedStart(t *testing.T) {
	f := &fakeCoordinator{}
	acks := make(chan *stratav1.AssignmentAck, 10)
	f.joinFn = func(n int, s stratav1.GroupService_JoinServer) error {
		_ = s.Send(joined("m1", 3000))
		_ = s.Send(assignment(1, map[int32]int64{0: -1}))
		go func() {
			<-acks
			time.Sleep(500 * time.Millisecond) // the start is resolved
			_ = s.Send(assignment(2, nil))
		}()
		return f.serveHeartbeats(s, acks, true)
	}
	c := startCoordinator(t, f)
	g, err := c.JoinGroup(client.GroupConfig{Group: "g", Topics: []string{"t"}, Reset: client.ResetLatest})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	pollUntil(t, g, "revoked", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.Contains(f.events, "ack 2 []")
	})
	f.mu.Lock()
	events := slices.Clone(f.events)
	f.mu.Unlock()
	if i := slices.Index(events, "commit t/0=10"); i < 0 || i > slices.Index(events, "ack 2 []") {
		t.Fatalf("events %v: want t/0's resolved start (10) committed before the revocation's acknowledgement", events)
	}
}

// TestGroupConsumerRefusedJoin: a join the coordinator refuses for good
// (RESOURCE_EXHAUSTED: the group is too large) fails Poll with the
// coordinator's reason instead of being retried forever.
func TestGroupConsumerRefusedJoin(t *testing.T) {
	f := &fakeCoordinator{}
	f.joinFn = func(int, stratav1.GroupService_JoinServer) error {
		return status.Error(codes.ResourceExhausted, "broker: consumer group too large: group g")
	}
	c := startCoordinator(t, f)
	g, err := c.JoinGroup(client.GroupConfig{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, err := g.Poll(ctx)
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), "too large") {
			t.Fatalf("Poll: %v, want the refusal", err)
		}
		break
	}
}

// TestGroupConsumerCommitDoesNotOutliveItsMembership: a commit retried
// while the coordinator is unavailable is not sent on behalf of the new
// member the consumer became after being fenced meanwhile (its offsets
// are the old membership's, maybe behind what another member committed
// since): it fails with ErrFenced.
func TestGroupConsumerCommitDoesNotOutliveItsMembership(t *testing.T) {
	f := &fakeCoordinator{commitErr: status.Error(codes.Unavailable, "coordinator loading")}
	fence := make(chan struct{})
	f.joinFn = func(n int, s stratav1.GroupService_JoinServer) error {
		if n == 1 {
			_ = s.Send(joined("m1", 3000))
			_ = s.Send(assignment(1, map[int32]int64{0: 5}))
			go func() { _ = f.serveHeartbeats(s, nil, true) }()
			<-fence
			return status.Error(codes.FailedPrecondition, "member m1 is no longer in group g")
		}
		_ = s.Send(joined("m2", 3000))
		_ = s.Send(assignment(1, map[int32]int64{0: 5}))
		f.mu.Lock()
		f.commitErr = nil
		f.mu.Unlock()
		return f.serveHeartbeats(s, nil, true)
	}
	c := startCoordinator(t, f)
	g, err := c.JoinGroup(client.GroupConfig{Group: "g", Topics: []string{"t"}, ManualCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	pollUntil(t, g, "joined", func() bool { return g.MemberID() == "m1" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.CommitOffsets(ctx, map[client.TopicPartition]int64{{Topic: "t", Partition: 0}: 7}) }()
	pollUntil(t, g, "commit attempted", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.commits) > 0
	})
	close(fence)
	pollUntil(t, g, "rejoined", func() bool { return g.MemberID() == "m2" })
	if err := <-done; !errors.Is(err, client.ErrFenced) {
		t.Fatalf("commit of the old membership: %v, want ErrFenced", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.commits {
		if r.GetMemberId() != "m1" {
			t.Fatalf("the old membership's commit was sent as member %s", r.GetMemberId())
		}
	}
}

// TestGroupConsumerFenced: a stream ended with FAILED_PRECONDITION (the
// member was removed) makes the consumer give up its partitions and join
// again as a new member; a rejected commit is ErrFenced.
func TestGroupConsumerFenced(t *testing.T) {
	f := &fakeCoordinator{commitErr: status.Error(codes.FailedPrecondition, "member m1 is not in group g")}
	f.joinFn = func(n int, s stratav1.GroupService_JoinServer) error {
		if n == 1 {
			_ = s.Send(joined("m1", 3000))
			_ = s.Send(assignment(1, map[int32]int64{0: 10}))
			r, err := s.Recv() // the acknowledgement
			if err != nil || r.GetAck() == nil {
				return err
			}
			return status.Error(codes.FailedPrecondition, "member m1 is no longer in group g")
		}
		_ = s.Send(joined("m2", 3000))
		return f.serveHeartbeats(s, nil, true)
	}
	c := startCoordinator(t, f)
	lost := make(chan []client.TopicPartition, 1)
	g, err := c.JoinGroup(client.GroupConfig{Group: "g", Topics: []string{"t"}, ManualCommit: true,
		OnLost: func(tps []client.TopicPartition) { lost <- tps }})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.CommitOffsets(ctx, map[client.TopicPartition]int64{{Topic: "t", Partition: 0}: 3}); !errors.Is(err, client.ErrFenced) {
		t.Fatalf("rejected commit: %v, want ErrFenced", err)
	}
	pollUntil(t, g, "lost", func() bool { return len(lost) == 1 })
	if tps := <-lost; len(tps) != 1 || tps[0].Partition != 0 {
		t.Fatalf("lost %v", tps)
	}
	pollUntil(t, g, "new member", func() bool { return g.MemberID() == "m2" })
	f.mu.Lock()
	defer f.mu.Unlock()
	if re := f.joins[1]; re.GetMemberId() != "" || re.GetGeneration() != 0 {
		t.Fatalf("join after fencing %v: want a new member", re)
	}
}

// TestGroupConsumerResetNone: a partition without a committed offset
// fails Poll with ErrNoOffset under ResetNone, naming it; ParseOffsetReset
// knows the three policies.
func TestGroupConsumerResetNone(t *testing.T) {
	f := &fakeCoordinator{}
	f.joinFn = func(n int, s stratav1.GroupService_JoinServer) error {
		_ = s.Send(joined("m1", 3000))
		_ = s.Send(assignment(1, map[int32]int64{0: -1, 1: 4}))
		return f.serveHeartbeats(s, nil, true)
	}
	c := startCoordinator(t, f)
	g, err := c.JoinGroup(client.GroupConfig{Group: "g", Topics: []string{"t"}, Reset: client.ResetNone, ManualCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, err := g.Poll(ctx)
		if errors.Is(err, client.ErrNoOffset) {
			if msg := err.Error(); !strings.Contains(msg, "t/0") || strings.Contains(msg, "t/1") {
				t.Fatalf("ErrNoOffset names the wrong partitions: %v", err)
			}
			break
		}
		if err != nil {
			t.Fatalf("Poll: %v, want ErrNoOffset", err)
		}
	}
	if r, err := client.ParseOffsetReset("none"); err != nil || r != client.ResetNone {
		t.Fatal(r, err)
	}
	if _, err := client.ParseOffsetReset("middle"); err == nil {
		t.Fatal("ParseOffsetReset accepted middle")
	}
}

// TestGroupConsumerResetEarliestLatest: a partition without a committed
// offset starts at the log start under ResetEarliest (its records from 0)
// and at the log end under ResetLatest (no record; its position, as
// committed, is the log end 10); one with a committed offset starts there
// under either.
func TestGroupConsumerResetEarliestLatest(t *testing.T) {
	for _, reset := range []client.OffsetReset{client.ResetEarliest, client.ResetLatest} {
		t.Run(reset.String(), func(t *testing.T) {
			f := &fakeCoordinator{}
			f.joinFn = func(n int, s stratav1.GroupService_JoinServer) error {
				_ = s.Send(joined("m1", 3000))
				_ = s.Send(assignment(1, map[int32]int64{0: -1, 1: 4}))
				return f.serveHeartbeats(s, nil, true)
			}
			c := startCoordinator(t, f)
			g, err := c.JoinGroup(client.GroupConfig{Group: "g", Topics: []string{"t"}, Reset: reset, ManualCommit: true})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			first := map[int32]int64{}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for len(first) < 2 && (reset == client.ResetEarliest || len(first) < 1) {
				recs, err := g.Poll(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					if _, ok := first[r.Partition]; !ok {
						first[r.Partition] = r.Offset
					}
				}
			}
			if first[1] != 4 {
				t.Fatalf("partition 1 (committed 4) started at %d", first[1])
			}
			if reset == client.ResetEarliest {
				if first[0] != 0 {
					t.Fatalf("earliest: partition 0 started at %d, want 0", first[0])
				}
				return
			}
			if o, ok := first[0]; ok {
				t.Fatalf("latest: partition 0 returned offset %d, want nothing (it starts at the log end)", o)
			}
			// Its position is known once its fetcher resolved the start.
			for {
				if err := g.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				f.mu.Lock()
				events := slices.Clone(f.events)
				f.mu.Unlock()
				for _, e := range events {
					if strings.HasPrefix(e, "commit t/0=") && e != "commit t/0=10" {
						t.Fatalf("events %v: want partition 0's position, the log end 10, committed", events)
					}
				}
				if slices.Contains(events, "commit t/0=10") {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("events %v: partition 0's position (the log end 10) never committed", events)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
