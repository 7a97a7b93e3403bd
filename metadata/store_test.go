package metadata

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// One real embedded etcd for the package; each test uses its own cluster
// prefix.
var (
	testCli     *clientv3.Client
	clusterSeq  atomic.Int32
	testTimeout = 20 * time.Second
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-etcd-")
	if err != nil {
		panic(err)
	}
	e, err := StartEmbedded(EmbeddedConfig{Dir: dir})
	if err != nil {
		panic(err)
	}
	testCli, err = e.Client()
	if err != nil {
		panic(err)
	}
	code := m.Run()
	testCli.Close()
	e.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newStore(t *testing.T) (*Store, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return New(testCli, fmt.Sprintf("test-%d", clusterSeq.Add(1))), ctx
}

func lease(t *testing.T, ctx context.Context) clientv3.LeaseID {
	t.Helper()
	l, err := testCli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	return l.ID
}

func TestTopicLifecycle(t *testing.T) {
	s, ctx := newStore(t)
	created, err := s.CreateTopic(ctx, Topic{Name: "orders", Partitions: 3, Config: map[string]string{"retention.ms": "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	if created.ID == "" || created.CreatedMs == 0 {
		t.Fatalf("created %+v", created)
	}
	if _, err := s.CreateTopic(ctx, Topic{Name: "orders", Partitions: 1}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := s.CreateTopic(ctx, Topic{Name: "bad name", Partitions: 1}); !errors.Is(err, ErrInvalidTopicName) {
		t.Fatalf("bad name: %v", err)
	}
	got, err := s.GetTopic(ctx, "orders")
	if err != nil || got.ID != created.ID || got.Partitions != 3 || got.Config["retention.ms"] != "1000" {
		t.Fatalf("GetTopic = %+v, %v", got, err)
	}
	for p := range int32(3) {
		st, err := s.GetPartitionState(ctx, "orders", p)
		if err != nil || st != (PartitionState{}) {
			t.Fatalf("state of %d: %+v %v", p, st, err)
		}
	}
	if _, err := s.GetPartitionState(ctx, "orders", 3); !errors.Is(err, ErrPartitionNotFound) {
		t.Fatalf("state of missing partition: %v", err)
	}
	if _, err := s.CreateTopic(ctx, Topic{Name: "audit", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListTopics(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "audit" || list[1].Name != "orders" {
		t.Fatalf("ListTopics = %+v, %v", list, err)
	}
	altered, err := s.AlterTopicConfig(ctx, "orders", func(m map[string]string) (map[string]string, error) {
		delete(m, "retention.ms")
		m["segment.bytes"] = "1024"
		return m, nil
	})
	if err != nil || altered.Config["segment.bytes"] != "1024" || altered.Config["retention.ms"] != "" {
		t.Fatalf("AlterTopicConfig = %+v, %v", altered, err)
	}
	if _, err := s.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTopic(ctx, "orders"); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if _, err := s.GetPartitionState(ctx, "orders", 0); !errors.Is(err, ErrPartitionNotFound) {
		t.Fatalf("partition state survived delete: %v", err)
	}
	if _, err := s.DeleteTopic(ctx, "orders"); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	again, err := s.CreateTopic(ctx, Topic{Name: "orders", Partitions: 1})
	if err != nil || again.ID == created.ID {
		t.Fatalf("recreate: %+v %v", again, err)
	}
}

func TestConcurrentCreateHasOneWinner(t *testing.T) {
	s, ctx := newStore(t)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.CreateTopic(ctx, Topic{Name: "race", Partitions: 2})
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, ErrTopicExists):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d creators won", wins.Load())
	}
}

// TestFencing is the fencing rule: a leader whose leadership was lost can
// never write partition state again.
func TestFencing(t *testing.T) {
	s, ctx := newStore(t)
	f, err := s.CreateTopic(ctx, Topic{Name: "f", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	l1 := lease(t, ctx)
	a, err := s.AcquireLeadership(ctx, f, 0, 1, l1)
	if err != nil || a.Epoch != 1 {
		t.Fatalf("first leadership: %+v %v", a, err)
	}
	if _, err := s.AcquireLeadership(ctx, f, 0, 2, lease(t, ctx)); !errors.Is(err, ErrLeaderExists) {
		t.Fatalf("second leader while the first is alive: %v", err)
	}
	if err := s.UpdatePartitionState(ctx, a, PartitionState{HighWatermark: 10}); err != nil {
		t.Fatalf("current leader write: %v", err)
	}
	if cur, ok, err := s.GetLeader(ctx, "f", 0); err != nil || !ok || cur.BrokerID != 1 || cur.Epoch != 1 {
		t.Fatalf("GetLeader = %+v %v %v", cur, ok, err)
	}
	// Broker 1's session ends: its leader key goes with the lease.
	if _, err := testCli.Revoke(ctx, l1); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.GetLeader(ctx, "f", 0); ok {
		t.Fatal("leader key survived its lease")
	}
	if err := s.UpdatePartitionState(ctx, a, PartitionState{HighWatermark: 11}); !errors.Is(err, ErrFenced) {
		t.Fatalf("write after losing the lease: %v, want ErrFenced", err)
	}
	b, err := s.AcquireLeadership(ctx, f, 0, 2, lease(t, ctx))
	if err != nil || b.Epoch != 2 {
		t.Fatalf("takeover: %+v %v", b, err)
	}
	if err := s.UpdatePartitionState(ctx, a, PartitionState{HighWatermark: 12}); !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed leader write: %v, want ErrFenced", err)
	}
	if err := s.UpdatePartitionState(ctx, b, PartitionState{HighWatermark: 13}); err != nil {
		t.Fatal(err)
	}
	st, _ := s.GetPartitionState(ctx, "f", 0)
	if st.HighWatermark != 13 {
		t.Fatalf("high watermark %d, want 13 (a fenced write landed)", st.HighWatermark)
	}
}

func TestEpochsNeverRepeat(t *testing.T) {
	s, ctx := newStore(t)
	e, err := s.CreateTopic(ctx, Topic{Name: "e", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	last := int64(0)
	for range 5 {
		l := lease(t, ctx)
		got, err := s.AcquireLeadership(ctx, e, 0, 1, l)
		if err != nil || got.Epoch <= last {
			t.Fatalf("epoch %d after %d (%v)", got.Epoch, last, err)
		}
		last = got.Epoch
		if _, err := testCli.Revoke(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AcquireLeadership(ctx, Topic{Name: "missing"}, 0, 1, lease(t, ctx)); !errors.Is(err, ErrPartitionNotFound) {
		t.Fatalf("leadership of a missing partition: %v", err)
	}
}

func TestBrokersFollowTheirLease(t *testing.T) {
	s, ctx := newStore(t)
	l := lease(t, ctx)
	if err := s.RegisterBroker(ctx, Broker{ID: 2, Address: "127.0.0.1:2"}, l); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterBroker(ctx, Broker{ID: 1, Address: "127.0.0.1:1"}, lease(t, ctx)); err != nil {
		t.Fatal(err)
	}
	bs, err := s.ListBrokers(ctx)
	if err != nil || len(bs) != 2 || bs[0].ID != 1 {
		t.Fatalf("ListBrokers = %+v %v", bs, err)
	}
	testCli.Revoke(ctx, l)
	if bs, _ := s.ListBrokers(ctx); len(bs) != 1 || bs[0].ID != 1 {
		t.Fatalf("after revoke: %+v", bs)
	}
}

// TestManyPartitions: a topic's partition count is not bounded by etcd's
// limit of operations per transaction.
func TestManyPartitions(t *testing.T) {
	s, ctx := newStore(t)
	big, err := s.CreateTopic(ctx, Topic{Name: "big", Partitions: 10000})
	if err != nil {
		t.Fatal(err)
	}
	l := lease(t, ctx)
	for _, p := range []int32{0, 63, 64, 9999} {
		if _, err := s.AcquireLeadership(ctx, big, p, 1, l); err != nil {
			t.Fatalf("lead big/%d: %v", p, err)
		}
		if st, err := s.GetPartitionState(ctx, "big", p); err != nil || st != (PartitionState{}) {
			t.Fatalf("state of big/%d: %+v %v", p, st, err)
		}
	}
	if _, err := s.AcquireLeadership(ctx, big, 10000, 1, l); !errors.Is(err, ErrPartitionNotFound) {
		t.Fatalf("lead big/10000: %v, want ErrPartitionNotFound", err)
	}
	if _, err := s.GetPartitionState(ctx, "big", 10000); !errors.Is(err, ErrPartitionNotFound) {
		t.Fatalf("state of big/10000: %v, want ErrPartitionNotFound", err)
	}
}

// TestBatchedPartitionReads: GetLeaders and GetPartitionStates read every
// partition of a topic larger than one transaction's keys, and leave out
// the partitions without the key.
func TestBatchedPartitionReads(t *testing.T) {
	s, ctx := newStore(t)
	wide, err := s.CreateTopic(ctx, Topic{Name: "wide", Partitions: 250})
	if err != nil {
		t.Fatal(err)
	}
	l := lease(t, ctx)
	led := []int32{0, 99, 100, 249}
	for _, p := range led {
		lead, err := s.AcquireLeadership(ctx, wide, p, 1, l)
		if err != nil {
			t.Fatalf("lead wide/%d: %v", p, err)
		}
		if err := s.UpdatePartitionState(ctx, lead, PartitionState{LogStartOffset: int64(p), HighWatermark: int64(p) + 10}); err != nil {
			t.Fatal(err)
		}
	}
	leaders, err := s.GetLeaders(ctx, "wide", wide.Partitions)
	if err != nil {
		t.Fatal(err)
	}
	states, err := s.GetPartitionStates(ctx, "wide", wide.Partitions)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaders) != len(led) || len(states) != len(led) {
		t.Fatalf("%d leaders and %d states, want %d of each", len(leaders), len(states), len(led))
	}
	for _, p := range led {
		if l, ok := leaders[p]; !ok || l.BrokerID != 1 || l.Epoch != 1 {
			t.Errorf("leader of wide/%d: %+v %v, want broker 1 epoch 1", p, l, ok)
		}
		if st := states[p]; st != (PartitionState{LogStartOffset: int64(p), HighWatermark: int64(p) + 10}) {
			t.Errorf("state of wide/%d: %+v", p, st)
		}
	}
}

// TestLeadershipAcrossIncarnations: leadership of a deleted topic's
// partition cannot be taken once the topic is recreated, and a leader key
// a session left behind is taken over by the same session (fencing the
// old leadership) or released for others.
func TestLeadershipAcrossIncarnations(t *testing.T) {
	s, ctx := newStore(t)
	old, err := s.CreateTopic(ctx, Topic{Name: "r", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	deleted, err := s.DeleteTopic(ctx, "r")
	if err != nil || deleted.ID != old.ID {
		t.Fatalf("DeleteTopic returned %+v %v, want id %s", deleted, err, old.ID)
	}
	cur, err := s.CreateTopic(ctx, Topic{Name: "r", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	l := lease(t, ctx)
	if _, err := s.AcquireLeadership(ctx, old, 0, 1, l); !errors.Is(err, ErrPartitionNotFound) {
		t.Fatalf("leading the deleted incarnation: %v, want ErrPartitionNotFound", err)
	}
	a, err := s.AcquireLeadership(ctx, cur, 0, 1, l)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.AcquireLeadership(ctx, cur, 0, 1, l)
	if err != nil || b.Epoch != a.Epoch+1 {
		t.Fatalf("same-lease takeover: %+v %v", b, err)
	}
	if err := s.UpdatePartitionState(ctx, a, PartitionState{HighWatermark: 1}); !errors.Is(err, ErrFenced) {
		t.Fatalf("write with the taken-over leadership: %v, want ErrFenced", err)
	}
	other := lease(t, ctx)
	if _, err := s.AcquireLeadership(ctx, cur, 0, 2, other); !errors.Is(err, ErrLeaderExists) {
		t.Fatalf("another broker while led: %v, want ErrLeaderExists", err)
	}
	if err := s.ReleaseLeadership(ctx, a); err != nil { // stale: a no-op
		t.Fatal(err)
	}
	if _, ok, _ := s.GetLeader(ctx, "r", 0); !ok {
		t.Fatal("releasing a stale leadership removed the current leader")
	}
	if err := s.ReleaseLeadership(ctx, b); err != nil {
		t.Fatal(err)
	}
	c, err := s.AcquireLeadership(ctx, cur, 0, 2, other)
	if err != nil || c.Epoch != b.Epoch+1 {
		t.Fatalf("leadership after release: %+v %v", c, err)
	}
}

// TestAssignmentsAreFencedByTheController: only the current controller's
// assignments land; the controller id is the oldest campaigner's.
func TestAssignmentsAreFencedByTheController(t *testing.T) {
	s, ctx := newStore(t)
	if _, err := s.CreateTopic(ctx, Topic{Name: "a", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	if id, err := s.ControllerID(ctx); err != nil || id != -1 {
		t.Fatalf("controller before any campaign: %d %v", id, err)
	}
	l1, l2 := lease(t, ctx), lease(t, ctx)
	k1 := fmt.Sprintf("%s/%x", s.ControllerPrefix(), l1)
	k2 := fmt.Sprintf("%s/%x", s.ControllerPrefix(), l2)
	r1, err := testCli.Put(ctx, k1, "7", clientv3.WithLease(l1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testCli.Put(ctx, k2, "9", clientv3.WithLease(l2)); err != nil {
		t.Fatal(err)
	}
	if id, err := s.ControllerID(ctx); err != nil || id != 7 {
		t.Fatalf("controller = %d %v, want 7 (the oldest campaigner)", id, err)
	}
	fence := ControllerFence{Key: k1, Rev: r1.Header.Revision}
	if err := s.SetAssignments(ctx, fence, "a", map[int32]int32{0: 7, 1: 9, 2: 7}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListAssignments(ctx)
	if err != nil || fmt.Sprint(got["a"]) != "map[0:7 1:9 2:7]" {
		t.Fatalf("assignments %v %v", got, err)
	}
	if err := s.SetAssignments(ctx, fence, "missing", map[int32]int32{0: 7}); !errors.Is(err, ErrFenced) {
		t.Fatalf("assigning a missing topic: %v, want ErrFenced", err)
	}
	// The controller's session ends: its fence no longer holds.
	if _, err := testCli.Revoke(ctx, l1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAssignments(ctx, fence, "a", map[int32]int32{0: 9}); !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed controller's write: %v, want ErrFenced", err)
	}
	if got, _ := s.ListAssignments(ctx); got["a"][0] != 7 {
		t.Fatalf("a deposed controller's assignment landed: %v", got)
	}
	if id, _ := s.ControllerID(ctx); id != 9 {
		t.Fatalf("controller after the first left = %d, want 9", id)
	}
}

// TestLeadershipRuns: RunStart is the first epoch of the current broker's
// uninterrupted run of leaderships.
func TestLeadershipRuns(t *testing.T) {
	s, ctx := newStore(t)
	tp, err := s.CreateTopic(ctx, Topic{Name: "runs", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	take := func(broker int32) Leadership {
		t.Helper()
		l := lease(t, ctx)
		got, err := s.AcquireLeadership(ctx, tp, 0, broker, l)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := testCli.Revoke(ctx, l); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for i, want := range []struct {
		broker          int32
		epoch, runStart int64
	}{{1, 1, 1}, {1, 2, 1}, {1, 3, 1}, {2, 4, 4}, {2, 5, 4}, {1, 6, 6}} {
		got := take(want.broker)
		if got.Epoch != want.epoch || got.RunStart != want.runStart {
			t.Fatalf("leadership %d by broker %d: epoch %d run start %d, want %d and %d", i, want.broker, got.Epoch, got.RunStart, want.epoch, want.runStart)
		}
	}
}
