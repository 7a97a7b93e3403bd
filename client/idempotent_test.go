package client_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/client"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
)

// seqLog is a fake leader's log of one partition with the broker's
// idempotence rules: a producer id's batches are written in sequence
// order, a retry of a written one is answered with its offset, a gap is
// refused (ABORTED), an unknown id must start at sequence 0 (OUT_OF_RANGE).
type seqLog struct {
	mu      sync.Mutex
	values  []string
	next    map[int64]int32    // per producer id, the next sequence
	offsets map[[2]int64]int64 // (id, first sequence) -> offset
	seen    map[string]int     // value -> times written
}

func newSeqLog() *seqLog {
	return &seqLog{next: map[int64]int32{}, offsets: map[[2]int64]int64{}, seen: map[string]int{}}
}

// write applies one single-record batch; it returns its header and result.
func (l *seqLog) write(t *testing.T, records []byte) (segment.BatchHeader, *stratav1.PartitionResult) {
	h, err := segment.ParseBatchHeader(records)
	if err != nil || h.NumRecords != 1 {
		t.Errorf("fake leader: batch %+v (%v), want one record", h, err)
		return h, &stratav1.PartitionResult{Error: &stratav1.Error{Code: int32(codes.InvalidArgument), Message: "bad batch"}}
	}
	var v string
	if err := segment.BatchRecords(records, func(r segment.Record) error { v = string(r.Value); return nil }); err != nil {
		t.Errorf("fake leader: records: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	next, known := l.next[h.ProducerID]
	switch {
	case known && h.FirstSequence < next:
		off := l.offsets[[2]int64{h.ProducerID, int64(h.FirstSequence)}]
		return h, &stratav1.PartitionResult{BaseOffset: off, LastOffset: off}
	case !known && h.FirstSequence != 0:
		return h, &stratav1.PartitionResult{Error: &stratav1.Error{Code: int32(codes.OutOfRange), Message: "unknown producer id"}}
	case h.FirstSequence > next:
		return h, &stratav1.PartitionResult{Error: &stratav1.Error{Code: int32(codes.Aborted), Message: "out of order"}}
	}
	off := int64(len(l.values))
	l.values = append(l.values, v)
	l.seen[v]++
	l.next[h.ProducerID] = h.FirstSequence + 1
	l.offsets[[2]int64{h.ProducerID, int64(h.FirstSequence)}] = off
	return h, &stratav1.PartitionResult{BaseOffset: off, LastOffset: off}
}

func (l *seqLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.values)
}

// TestIdempotentProducerNeverWritesABatchTwice: batch A fails for good
// after batch B, sent behind it, was written with its answer lost. The
// partition then takes a new producer id; B must not be sent again under
// it (the leader could not tell it from a new batch and would write it
// twice), so B fails with ErrInDoubt, and every record that is
// acknowledged is in the log once, at its acknowledged offset. (The
// chaos test found this: a record acknowledged at 3444 and also at 3443.)
func TestIdempotentProducerNeverWritesABatchTwice(t *testing.T) {
	log := newSeqLog()
	var aPid int64 = -1
	var mu sync.Mutex
	f := &fakeBroker{}
	f.streamFn = func(n int32, s stratav1.ProduceService_ProduceStreamServer) error {
		for {
			req, err := s.Recv()
			if err != nil {
				return err
			}
			resp := &stratav1.ProduceResponse{RequestId: req.GetRequestId()}
			for _, p := range req.GetPartitions() {
				h, err := segment.ParseBatchHeader(p.GetRecords())
				if err != nil {
					t.Errorf("fake leader: %v", err)
					continue
				}
				mu.Lock()
				if aPid < 0 {
					aPid = h.ProducerID
				}
				first := h.ProducerID == aPid
				mu.Unlock()
				var r *stratav1.PartitionResult
				switch {
				case n > 1 && first && h.FirstSequence == 0:
					// A's retry: refused for good.
					r = &stratav1.PartitionResult{Error: &stratav1.Error{Code: int32(codes.InvalidArgument), Message: "refused"}}
				case n > 1 && first:
					// B's retry under the first id: the leader moved.
					r = &stratav1.PartitionResult{Error: &stratav1.Error{Code: int32(codes.FailedPrecondition), Message: "not the leader"}}
				default:
					_, r = log.write(t, p.GetRecords())
				}
				r.Topic, r.Partition = p.GetTopic(), p.GetPartition()
				resp.Partitions = append(resp.Partitions, r)
			}
			if n == 1 {
				// The first stream writes A and B and answers neither.
				if log.len() >= 2 {
					return status.Error(codes.Unavailable, "leader crashed")
				}
				continue
			}
			if err := s.Send(resp); err != nil {
				return err
			}
		}
	}
	c := fakeClient(t, f)
	p := c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_LEADER, Idempotent: true, ManualPartitions: true,
		Linger: -1, RetryBackoff: 5 * time.Millisecond, Retries: 100, DeliveryTimeout: 10 * time.Second})
	defer p.Close()

	type outcome struct {
		offset int64
		err    error
	}
	produce := func(v string) <-chan outcome {
		ch := make(chan outcome, 1)
		if err := p.Produce(t.Context(), &client.Record{Topic: "t", Partition: 0, Value: []byte(v)}, func(r *client.Record, err error) {
			ch <- outcome{r.Offset, err}
		}); err != nil {
			t.Fatal(err)
		}
		return ch
	}
	wait := func(what string, ch <-chan outcome) outcome {
		t.Helper()
		select {
		case o := <-ch:
			return o
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: no answer within 15 s", what)
			return outcome{}
		}
	}
	a, b := produce("A"), produce("B")
	oa, ob := wait("A", a), wait("B", b)
	if oa.err == nil || status.Code(oa.err) != codes.InvalidArgument {
		t.Fatalf("A: %v, want the leader's refusal", oa.err)
	}
	oc := wait("C", produce("C")) // the partition goes on under its new id
	acked := map[string]int64{}
	if ob.err == nil {
		acked["B"] = ob.offset
	} else if !errors.Is(ob.err, client.ErrInDoubt) {
		t.Fatalf("B: %v, want acknowledged or ErrInDoubt", ob.err)
	}
	if oc.err != nil {
		t.Fatalf("C: %v", oc.err)
	}
	acked["C"] = oc.offset
	log.mu.Lock()
	defer log.mu.Unlock()
	for v, off := range acked {
		if n := log.seen[v]; n != 1 {
			t.Errorf("%s acknowledged at %d is in the log %d times: %q", v, off, n, log.values)
		}
		if off < 0 || off >= int64(len(log.values)) || log.values[off] != v {
			t.Errorf("%s acknowledged at %d, but the log holds %q", v, off, log.values)
		}
	}
	if log.seen["B"] != 1 {
		t.Errorf("B written %d times: %q", log.seen["B"], log.values)
	}
}
