package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering/objstore"
)

// TestWALAcksAll: with the WAL on, acks=all is acknowledged only once a
// WAL object holding the records is in the store, and consumers read only
// up to what is committed: while the store is down, acks=all waits (and
// times out), acks=leader is acknowledged but its records stay invisible;
// once the store is back, both are committed in order.
func TestWALAcksAll(t *testing.T) {
	store := objstore.NewFaulty(objstore.NewMem())
	b := startWALBroker(t, store)
	b.createTopic(t, "w", 2, nil)
	produce := func(acks stratav1.Acks, timeout time.Duration, values ...string) *stratav1.PartitionResult {
		t.Helper()
		resp, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{Acks: acks, TimeoutMs: uint32(timeout / time.Millisecond),
			Partitions: []*stratav1.PartitionRecords{{Topic: "w", Partition: 1, Records: batch(values...)}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetPartitions()[0]
	}
	puts := store.Calls(objstore.OpPut)
	if r := produce(stratav1.Acks_ACKS_ALL, 10*time.Second, "a", "b"); r.GetError() != nil || r.GetBaseOffset() != 0 {
		t.Fatalf("acks=all produce: %v", r)
	}
	if store.Calls(objstore.OpPut) == puts {
		t.Fatal("acks=all acknowledged without a PUT to the object store")
	}
	if hw := b.listOffset(t, "w", 1, latest()).GetHighWatermark(); hw != 2 {
		t.Fatalf("high watermark after an acknowledged acks=all write of 2 records: %d, want 2", hw)
	}

	store.SetDown(true)
	r := produce(stratav1.Acks_ACKS_ALL, 300*time.Millisecond, "c")
	if r.GetError() == nil {
		t.Fatalf("acks=all acknowledged while the object store is down: %v", r)
	}
	if code := codes.Code(r.GetError().GetCode()); code != codes.DeadlineExceeded && code != codes.Unavailable {
		t.Fatalf("acks=all with the store down: %v, want DEADLINE_EXCEEDED or UNAVAILABLE", r.GetError())
	}
	if r := produce(stratav1.Acks_ACKS_LEADER, 10*time.Second, "d"); r.GetError() != nil || r.GetBaseOffset() != 3 {
		t.Fatalf("acks=leader with the store down: %v, want offset 3", r)
	}
	if hw := b.listOffset(t, "w", 1, latest()).GetHighWatermark(); hw != 2 {
		t.Fatalf("high watermark with the store down: %d, want 2 (nothing uncommitted is visible)", hw)
	}
	// A long poll from the high watermark sees nothing uncommitted.
	ctx, cancel := context.WithTimeout(rpcCtx(t), 300*time.Millisecond)
	stream, err := b.consume.Consume(ctx, &stratav1.ConsumeRequest{Topic: "w", Partition: 1, Start: exact(2), MaxWaitMs: 200})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err == nil && len(resp.GetRecords()) > 0 {
		t.Fatalf("consumer read %d bytes of uncommitted records from offset 2", len(resp.GetRecords()))
	}
	cancel()

	store.SetDown(false)
	if r := produce(stratav1.Acks_ACKS_ALL, 10*time.Second, "e"); r.GetError() != nil || r.GetBaseOffset() != 4 {
		t.Fatalf("acks=all once the store is back: %v, want offset 4", r)
	}
	if got := strings.Join(values(t, b.consumeRange(t, "w", 1, 0, 5), 0), ","); got != "a,b,c,d,e" {
		t.Fatalf("partition holds %q, want a,b,c,d,e (the timed-out acks=all write is committed too)", got)
	}
}

// TestWALGarbageCollected: once uploaded segments cover a WAL object's
// sections, the controller deletes the object and its etcd record; a quiet
// partition's tail is sealed after WALMaxAge so that this happens without
// new traffic. The records stay readable.
func TestWALGarbageCollected(t *testing.T) {
	mem := objstore.NewMem()
	b := startWALBroker(t, mem, func(c *Config) {
		c.WALMaxAge = 200 * time.Millisecond
		c.WALGCInterval = 100 * time.Millisecond
		c.UploadInterval = 50 * time.Millisecond
	})
	b.createTopic(t, "gc", 1, nil)
	var want []string
	for i := range 20 {
		v := fmt.Sprintf("v%02d", i)
		want = append(want, v)
		resp, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{Acks: stratav1.Acks_ACKS_ALL,
			Partitions: []*stratav1.PartitionRecords{{Topic: "gc", Records: batch(v)}}})
		if err != nil || resp.GetPartitions()[0].GetError() != nil {
			t.Fatalf("produce %d: %v %v", i, err, resp)
		}
	}
	walObjects := func() (n int) {
		err := mem.List(context.Background(), "wal/", func(objstore.ObjectInfo) error { n++; return nil })
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := walObjects(); n == 0 {
		t.Fatal("no WAL objects after 20 acks=all writes")
	}
	deadline := time.Now().Add(20 * time.Second)
	for walObjects() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d WAL objects left 20s after the writes (tail age 200ms, GC every 100ms)", walObjects())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ws, err := b.srv.store.ListWAL(context.Background())
	if err != nil || len(ws) != 0 {
		t.Fatalf("WAL records in etcd after GC: %d (%v)", len(ws), err)
	}
	if got := strings.Join(values(t, b.consumeRange(t, "gc", 0, 0, 20), 0), ","); got != strings.Join(want, ",") {
		t.Fatalf("after GC the partition reads %q", got)
	}
}

// TestWALTooOldRetryWaitsForCommit: a retry of an idempotent batch older
// than the five the leader remembers is answered ALREADY_EXISTS (which the
// client takes as written) only once the log below it is committed: not
// while the WAL cannot commit.
func TestWALTooOldRetryWaitsForCommit(t *testing.T) {
	store := objstore.NewFaulty(objstore.NewMem())
	b := startWALBroker(t, store)
	b.createTopic(t, "w", 1, nil)
	send := func(seq int32, timeout time.Duration) *stratav1.PartitionResult {
		t.Helper()
		resp, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{Acks: stratav1.Acks_ACKS_ALL, TimeoutMs: uint32(timeout / time.Millisecond),
			Partitions: []*stratav1.PartitionRecords{{Topic: "w", Records: idemBatch(7, seq, 1, 0)}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetPartitions()[0]
	}
	store.SetDown(true) // the WAL cannot commit
	for i := range int32(6) {
		if r := send(i, 50*time.Millisecond); r.GetError() == nil {
			t.Fatalf("batch %d acknowledged with the store down", i)
		}
	}
	r := send(0, 500*time.Millisecond)
	if codes.Code(r.GetError().GetCode()) == codes.AlreadyExists {
		t.Fatalf("retry of sequence 0 answered ALREADY_EXISTS (taken as written) while nothing is committed (high watermark %d)",
			b.listOffset(t, "w", 0, latest()).GetHighWatermark())
	}
	store.SetDown(false)
	r = send(0, 10*time.Second)
	if codes.Code(r.GetError().GetCode()) != codes.AlreadyExists {
		t.Fatalf("retry of sequence 0 once the store is back: %v, want ALREADY_EXISTS", r)
	}
	if hw := b.listOffset(t, "w", 0, latest()).GetHighWatermark(); hw != 6 {
		t.Fatalf("high watermark %d when ALREADY_EXISTS was answered, want 6", hw)
	}
}

// walPutFails fails the PUTs of WAL objects only (segment uploads work).
type walPutFails struct {
	objstore.Store
	fail atomic.Bool
}

func (w *walPutFails) Put(ctx context.Context, key string, data []byte) error {
	if w.fail.Load() && strings.HasPrefix(key, "wal/") {
		return fmt.Errorf("%w: WAL PUTs fail in this test", objstore.ErrUnavailable)
	}
	return w.Store.Put(ctx, key, data)
}

// TestUploadsWaitForTheWAL: while WAL PUTs fail, sealed segments are not
// uploaded past the committed end (so local eviction cannot take what the
// WAL has not shipped); once the WAL works again, acks=all works on every
// partition.
func TestUploadsWaitForTheWAL(t *testing.T) {
	store := &walPutFails{Store: objstore.NewMem()}
	b := startWALBroker(t, store, func(c *Config) {
		c.UploadInterval = 20 * time.Millisecond
	})
	b.createTopic(t, "ev", 1, map[string]string{"segment.bytes": "16384", "max.message.bytes": "1024", "local.retention.bytes": "0"})
	b.createTopic(t, "other", 1, nil)
	store.fail.Store(true)
	val := strings.Repeat("x", 500)
	for range 100 {
		b.produceOK(t, "ev", 0, batch(val))
	}
	p, err := b.srv.partition("ev", 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 { // a second of upload rounds
		if start, _ := p.log.Offsets(); start > p.wal.committed.Load() || p.remoteEnd() > p.wal.committed.Load() {
			t.Fatalf("local start %d / uploaded end %d beyond the WAL's committed end %d", start, p.remoteEnd(), p.wal.committed.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	store.fail.Store(false)
	for _, topic := range []string{"other", "ev"} {
		resp, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{Acks: stratav1.Acks_ACKS_ALL, TimeoutMs: 10000,
			Partitions: []*stratav1.PartitionRecords{{Topic: topic, Records: batch("after")}}})
		if err != nil {
			t.Fatal(err)
		}
		if e := resp.GetPartitions()[0].GetError(); e != nil {
			t.Fatalf("acks=all to %s once WAL PUTs work again: %v", topic, e)
		}
	}
}

// TestFinalFlushBounded: the flush before handing a partition over waits
// at most its bound for a flush that is stuck retrying in a store outage.
func TestFinalFlushBounded(t *testing.T) {
	store := objstore.NewFaulty(objstore.NewMem())
	b := startWALBroker(t, store)
	b.createTopic(t, "w", 1, nil)
	store.SetDown(true)
	b.produceOK(t, "w", 0, batch("a"))
	time.Sleep(200 * time.Millisecond) // the flusher is retrying its PUT
	done := make(chan struct{})
	go func() { b.srv.finalFlush(b.srv.partitionsOf("w")); close(done) }()
	select {
	case <-done:
	case <-time.After(8 * time.Second):
		t.Errorf("finalFlush (bounded by 5 s) still blocked after 8 s in a store outage")
	}
	store.SetDown(false)
	<-done
}

// TestDropTopicEndsWALWaits: deleting a topic answers its acks=all
// requests waiting for the WAL at once (UNAVAILABLE), not at their
// timeout.
func TestDropTopicEndsWALWaits(t *testing.T) {
	store := objstore.NewFaulty(objstore.NewMem())
	b := startWALBroker(t, store)
	b.createTopic(t, "w", 1, nil)
	store.SetDown(true)
	res := make(chan *stratav1.PartitionResult, 1)
	go func() {
		resp, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{Acks: stratav1.Acks_ACKS_ALL, TimeoutMs: 15000,
			Partitions: []*stratav1.PartitionRecords{{Topic: "w", Records: batch("a")}}})
		if err != nil {
			t.Error(err)
		}
		res <- resp.GetPartitions()[0]
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := b.admin.DeleteTopic(rpcCtx(t), &stratav1.DeleteTopicRequest{Name: "w"}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	select {
	case r := <-res:
		if codes.Code(r.GetError().GetCode()) != codes.Unavailable {
			t.Fatalf("acks=all of a deleted topic: %v, want UNAVAILABLE", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("acks=all of a deleted topic not answered %s after the delete (its timeout is 15 s)", time.Since(deleted).Round(time.Millisecond))
	}
}

// TestTimestampLookupStopsAtTheHighWatermark: a start position by
// timestamp never lands beyond the committed end, on records a failover
// could still take back.
func TestTimestampLookupStopsAtTheHighWatermark(t *testing.T) {
	store := objstore.NewFaulty(objstore.NewMem())
	b := startWALBroker(t, store)
	b.createTopic(t, "w", 1, nil)
	at := func(ts int64, v string) []byte {
		return segment.AppendBatch(nil, segment.NoProducer, []segment.Record{{Timestamp: ts, Value: []byte(v)}})
	}
	resp, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{Acks: stratav1.Acks_ACKS_ALL, TimeoutMs: 5000,
		Partitions: []*stratav1.PartitionRecords{{Topic: "w", Records: at(1000, "a")}}})
	if err != nil || resp.GetPartitions()[0].GetError() != nil {
		t.Fatal(err, resp)
	}
	store.SetDown(true)
	b.produceOK(t, "w", 0, at(2000, "b")) // acks=leader: written, not committed
	b.produceOK(t, "w", 0, at(3000, "c"))
	r := b.listOffset(t, "w", 0, &stratav1.OffsetSpec{Spec: &stratav1.OffsetSpec_TimestampMs{TimestampMs: 3000}})
	if r.GetOffset() != 1 || r.GetHighWatermark() != 1 {
		t.Fatalf("timestamp 3000 resolved to offset %d (high watermark %d), want 1: the committed end", r.GetOffset(), r.GetHighWatermark())
	}
	store.SetDown(false)
}

// TestWALStateAdvanceAfterClose: a commit that lands after its partition
// closed (a final flush that gave up waiting for it) updates the state
// and does not panic.
func TestWALStateAdvanceAfterClose(t *testing.T) {
	w := newWALState(0)
	w.close()
	w.advance(5)
	if got := w.committed.Load(); got != 5 {
		t.Fatalf("committed %d, want 5", got)
	}
	if err := w.wait(context.Background(), 7); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("wait on a closed state: %v, want UNAVAILABLE", err)
	}
}

// startWALBroker starts a broker with the WAL on over store, flushing
// every 5 ms; opts adjust the config further.
func startWALBroker(t *testing.T, store objstore.Store, opts ...func(*Config)) *testBroker {
	t.Helper()
	return startBroker(t, append([]func(*Config){func(c *Config) {
		c.Objects = store
		c.WAL = true
		c.WALFlushInterval = 5 * time.Millisecond
	}}, opts...)...)
}
