package broker

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering/objstore"
)

// TestLocalDiskLimit: with the object store down, production continues
// until the local logs exceed the disk limit, then fails with
// UNAVAILABLE (retriable) naming the cause; once the store is back, uploads and
// local retention bring the logs under the limit and production resumes.
func TestLocalDiskLimit(t *testing.T) {
	store := objstore.NewFaulty(objstore.NewMem())
	store.SetDown(true)
	b := startBroker(t, func(c *Config) {
		c.Objects = store
		c.UploadInterval = 50 * time.Millisecond
		c.LocalDiskLimit = 256 << 10
	})
	b.createTopic(t, "full", 1, map[string]string{"segment.bytes": "65536", "max.message.bytes": "16384", "local.retention.bytes": "0"})
	batch := segment.AppendBatch(nil, segment.NoProducer, []segment.Record{{Value: bytes.Repeat([]byte("x"), 8000)}})
	produce := func() *stratav1.PartitionResult {
		r, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{Acks: stratav1.Acks_ACKS_LEADER,
			Partitions: []*stratav1.PartitionRecords{{Topic: "full", Records: bytes.Clone(batch)}}})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetPartitions()[0]
	}
	// 400 KiB of batches: the store is down, so the limit must trip.
	var refused *stratav1.Error
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; refused == nil; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("produce never refused after %d batches above a 256 KiB limit", i)
		}
		refused = produce().GetError()
		if i > 50 {
			time.Sleep(60 * time.Millisecond) // let the tier loop measure
		}
	}
	if codes.Code(refused.GetCode()) != codes.Unavailable || !strings.Contains(refused.GetMessage(), "local disk limit") {
		t.Fatalf("refusal: %v", refused)
	}
	// Once an upload attempt failed, the refusal names the cause.
	for i := 0; !strings.Contains(refused.GetMessage(), "uploads are failing: objstore: unavailable"); i++ {
		if i == 100 {
			t.Fatalf("refusal does not name the failing uploads: %v", refused)
		}
		time.Sleep(50 * time.Millisecond)
		refused = produce().GetError()
	}
	store.SetDown(false)
	deadline = time.Now().Add(20 * time.Second)
	for produce().GetError() != nil {
		if time.Now().After(deadline) {
			t.Fatal("production did not resume after the object store came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if store.Calls(objstore.OpPut) == 0 {
		t.Fatal("nothing was uploaded")
	}
}

// TestIdempotentProducer: a retried batch of an idempotent producer is
// answered with the offsets it was written at and not written again; a
// batch whose sequence skips ahead is refused (ABORTED) and writes nothing;
// the state survives a reopening of the partition (rebuilt from the log).
func TestIdempotentProducer(t *testing.T) {
	b := startBroker(t)
	b.createTopic(t, "idem", 1, nil)
	mk := func(seq int32, n int) []byte { return idemBatch(42, seq, n, 0) }
	send := func(batch []byte) *stratav1.PartitionResult { return b.sendBatch(t, "idem", batch) }
	first := send(mk(0, 3))
	if first.GetError() != nil || first.GetBaseOffset() != 0 || first.GetLastOffset() != 2 {
		t.Fatalf("first batch: %v", first)
	}
	again := send(mk(0, 3))
	if again.GetError() != nil || again.GetBaseOffset() != 0 || again.GetLastOffset() != 2 {
		t.Fatalf("retry of the first batch: %v, want its original offsets [0, 2]", again)
	}
	gap := send(mk(10, 1))
	if codes.Code(gap.GetError().GetCode()) != codes.Aborted {
		t.Fatalf("sequence gap: %v, want ABORTED", gap)
	}
	next := send(mk(3, 2))
	if next.GetError() != nil || next.GetBaseOffset() != 3 {
		t.Fatalf("next batch: %v", next)
	}
	// A batch without producer id is never deduplicated.
	plain := segment.AppendBatch(nil, segment.NoProducer, []segment.Record{{Value: []byte("plain")}})
	for i := range 2 {
		if r := send(bytes.Clone(plain)); r.GetError() != nil || r.GetBaseOffset() != int64(5+i) {
			t.Fatalf("plain batch %d: %v", i, r)
		}
	}
	// The state is rebuilt from the log when the partition is reopened.
	part, err := b.srv.partition("idem", 0)
	if err != nil {
		t.Fatal(err)
	}
	part.prodMu.Lock()
	part.producers = nil
	part.prodMu.Unlock()
	if err := part.rebuildProducers(nil, 0); err != nil {
		t.Fatal(err)
	}
	if r := send(mk(3, 2)); r.GetError() != nil || r.GetBaseOffset() != 3 {
		t.Fatalf("retry after the state was rebuilt: %v, want offset 3", r)
	}
	if _, end := part.log.Offsets(); end != 7 {
		t.Fatalf("log end %d, want 7: a retry was written twice", end)
	}
}

// idemBatch is a batch of n records of idempotent producer pid from
// sequence seq, each value padded to pad bytes.
func idemBatch(pid int64, seq int32, n, pad int) []byte {
	recs := make([]segment.Record, n)
	for i := range recs {
		recs[i] = segment.Record{Value: append([]byte(fmt.Sprint("seq-", seq+int32(i))), make([]byte, pad)...)}
	}
	return segment.AppendBatch(nil, segment.BatchOptions{ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq}, recs)
}

// sendBatch produces batch to partition 0 of topic with acks=leader and
// returns the partition's result.
func (b *testBroker) sendBatch(t *testing.T, topic string, batch []byte) *stratav1.PartitionResult {
	t.Helper()
	r, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{Acks: stratav1.Acks_ACKS_LEADER,
		Partitions: []*stratav1.PartitionRecords{{Topic: topic, Records: batch}}})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetPartitions()[0]
}

// TestProducerSnapshot: the idempotent producers' state is written beside
// each uploaded segment, so a leader whose local log no longer holds a
// producer's batches (a new leader, or an evicted tail) still recognises
// a retry of them: it answers with the original offsets and writes
// nothing.
func TestProducerSnapshot(t *testing.T) {
	mem := objstore.NewMem()
	b := startBroker(t, func(c *Config) {
		c.Objects = mem
		c.UploadInterval = 30 * time.Millisecond
	})
	b.createTopic(t, "snap", 1, map[string]string{"segment.bytes": "16384", "max.message.bytes": "8192", "local.retention.bytes": "0"})
	// Producer 7's batches [0,2] and [3,4], then producer 8 fills segments
	// until producer 7's are uploaded and evicted from the local log.
	if r := b.sendBatch(t, "snap", idemBatch(7, 0, 3, 0)); r.GetError() != nil || r.GetBaseOffset() != 0 {
		t.Fatalf("first batch: %v", r)
	}
	if r := b.sendBatch(t, "snap", idemBatch(7, 3, 2, 0)); r.GetError() != nil || r.GetBaseOffset() != 3 {
		t.Fatalf("second batch: %v", r)
	}
	part, err := b.srv.partition("snap", 0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for seq := int32(0); ; seq++ {
		if start, _ := part.log.Offsets(); start > 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("producer 7's batches not evicted from the local log after 20s")
		}
		if r := b.sendBatch(t, "snap", idemBatch(8, seq, 1, 4000)); r.GetError() != nil {
			t.Fatalf("filler batch %d: %v", seq, r.GetError())
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, end := part.log.Offsets()
	// Without the snapshot the state is lost with the local log: the
	// retry is refused as an unknown producer.
	if err := part.rebuildProducers(nil, 0); err != nil {
		t.Fatal(err)
	}
	if r := b.sendBatch(t, "snap", idemBatch(7, 3, 2, 0)); codes.Code(r.GetError().GetCode()) != codes.OutOfRange {
		t.Fatalf("retry without producer state: %v, want OUT_OF_RANGE (unknown producer)", r)
	}
	// With the last uploaded segment's snapshot, it is a recognised retry.
	part.rmu.RLock()
	last := part.remote.entries[len(part.remote.entries)-1]
	part.rmu.RUnlock()
	if !last.Producers {
		t.Fatalf("the last uploaded segment %s has no producer snapshot", last.Key)
	}
	states, err := b.srv.loadProducerSnapshot(context.Background(), last)
	if err != nil {
		t.Fatal(err)
	}
	if err := part.rebuildProducers(states, last.LastOffset+1); err != nil {
		t.Fatal(err)
	}
	if r := b.sendBatch(t, "snap", idemBatch(7, 3, 2, 0)); r.GetError() != nil || r.GetBaseOffset() != 3 || r.GetLastOffset() != 4 {
		t.Fatalf("retry with the snapshot's state: %v, want its original offsets [3, 4]", r)
	}
	if r := b.sendBatch(t, "snap", idemBatch(7, 5, 1, 0)); r.GetError() != nil || r.GetBaseOffset() != end {
		t.Fatalf("producer 7's next batch: %v, want offset %d", r, end)
	}
}
