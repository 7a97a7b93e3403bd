package broker

import (
	"bytes"
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
// RESOURCE_EXHAUSTED naming the cause; once the store is back, uploads and
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
	if codes.Code(refused.GetCode()) != codes.ResourceExhausted || !strings.Contains(refused.GetMessage(), "local disk limit") {
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
