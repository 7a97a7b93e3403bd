package broker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/tiering/objstore"
)

// TestWALAcksAll: with the WAL on, acks=all is acknowledged only once a
// WAL object holding the records is in the store, and consumers read only
// up to what is committed: while the store is down, acks=all waits (and
// times out), acks=leader is acknowledged but its records stay invisible;
// once the store is back, both are committed in order.
func TestWALAcksAll(t *testing.T) {
	store := objstore.NewFaulty(objstore.NewMem())
	b := startBroker(t, func(c *Config) {
		c.Objects = store
		c.WAL = true
		c.WALFlushInterval = 5 * time.Millisecond
	})
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
	b := startBroker(t, func(c *Config) {
		c.Objects = mem
		c.WAL = true
		c.WALFlushInterval = 5 * time.Millisecond
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
