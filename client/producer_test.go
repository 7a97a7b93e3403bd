package client_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/client"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
)

// Regression: the in-flight window is full when the stream breaks: sendOne stays
// blocked on the dead stream's slots forever, so nothing (not even the
// retried batches) is sent again until Close.
func TestProducerRecoversFromStreamBreakWithFullWindow(t *testing.T) {
	got1 := make(chan struct{})
	f := &fakeBroker{}
	f.streamFn = func(n int32, s stratav1.ProduceService_ProduceStreamServer) error {
		if n == 1 {
			if _, err := s.Recv(); err != nil {
				return err
			}
			close(got1)
			time.Sleep(300 * time.Millisecond) // client fills its window meanwhile
			return status.Error(codes.Unavailable, "broker restarting")
		}
		return okStream(n, s)
	}
	c := fakeClient(t, f)
	p := c.NewProducer(client.ProducerConfig{Linger: -1, MaxInFlightRequests: 1, RetryBackoff: 10 * time.Millisecond, DeliveryTimeout: 3 * time.Second})
	done := make(chan error, 2)
	pr := func(_ *client.Record, err error) { done <- err }
	ctx := context.Background()
	if err := p.Produce(ctx, &client.Record{Topic: "t", Value: []byte("a")}, pr); err != nil {
		t.Fatal(err)
	}
	<-got1
	if err := p.Produce(ctx, &client.Record{Topic: "t", Value: []byte("b")}, pr); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := p.Flush(fctx)
	t.Logf("Flush: %v; produce streams opened: %d", err, f.streams.Load())
	if err != nil {
		t.Errorf("Flush did not finish within 2s after a stream break (broker healthy again); only %d stream(s) ever opened", f.streams.Load())
	}
	p.Close()
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Errorf("record %d failed after the broker recovered: %v", i, err)
		}
	}
}

// Regression: a promise that produces again deadlocks once the budget is full,
// because resolve releases the budget only after calling the promises
// (and the promise runs on the sink's only receive goroutine).
func TestProduceFromPromise(t *testing.T) {
	f := &fakeBroker{streamFn: okStream}
	c := fakeClient(t, f)
	rec := func() *client.Record { return &client.Record{Topic: "t", Value: make([]byte, 1000)} }
	size := 1000 + 24
	p := c.NewProducer(client.ProducerConfig{Linger: -1, MaxInFlightBytes: 4 * size, DeliveryTimeout: 3 * time.Second})
	chained := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Fill the budget, the first record's promise chains one more record.
	for i := 0; i < 4; i++ {
		i := i
		err := p.Produce(context.Background(), rec(), func(_ *client.Record, err error) {
			if i == 0 {
				chained <- p.Produce(ctx, rec(), nil)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	err := <-chained
	t.Logf("Produce inside promise: %v", err)
	if err != nil {
		t.Errorf("Produce from a promise blocked until its ctx ended although every record was acknowledged")
	}
	p.Close()
}

// Regression: a batch closed by its linger timer and the next one closed
// by Produce (full) were handed to the sink by two goroutines, in
// whichever order they got there, so one producer's records to one
// partition could be written out of order without any retry.
func TestProducerKeepsOrderAcrossLingerAndFullBatches(t *testing.T) {
	rec := &recordingStream{}
	f := &fakeBroker{streamFn: rec.serve}
	c := fakeClient(t, f)
	// Batches of about 3 records and a 20 µs linger: timers close batches
	// all the time while Produce closes full ones.
	p := c.NewProducer(client.ProducerConfig{Linger: 20 * time.Microsecond, BatchBytes: 100, ManualPartitions: true, DeliveryTimeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 20000
	for i := range n {
		if i%7 == 0 {
			time.Sleep(time.Microsecond) // let linger timers fire between records
		}
		if err := p.Produce(ctx, &client.Record{Topic: "t", Value: []byte(fmt.Sprintf("%06d", i))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p.Close()
	got := rec.values()
	if len(got) != n {
		t.Fatalf("broker got %d records, want %d", len(got), n)
	}
	for i, v := range got {
		if want := fmt.Sprintf("%06d", i); v != want {
			t.Fatalf("record %d written is %s: records reordered", i, v)
		}
	}
}

// recordingStream is a fake broker's produce stream that keeps the value
// of every record written, per partition in the order written, and
// answers with the offsets.
type recordingStream struct {
	mu  sync.Mutex
	got map[int32][]string
}

func (rs *recordingStream) serve(_ int32, s stratav1.ProduceService_ProduceStreamServer) error {
	for {
		req, err := s.Recv()
		if err != nil {
			return err
		}
		resp := &stratav1.ProduceResponse{RequestId: req.GetRequestId()}
		for _, p := range req.GetPartitions() {
			rs.mu.Lock()
			if rs.got == nil {
				rs.got = map[int32][]string{}
			}
			part := p.GetPartition()
			first := int64(len(rs.got[part]))
			err := segment.ForEachBatch(p.GetRecords(), func(_ segment.BatchHeader, b []byte) error {
				return segment.BatchRecords(b, func(r segment.Record) error {
					rs.got[part] = append(rs.got[part], string(r.Value))
					return nil
				})
			})
			last := int64(len(rs.got[part])) - 1
			rs.mu.Unlock()
			if err != nil {
				return err
			}
			resp.Partitions = append(resp.Partitions, &stratav1.PartitionResult{Topic: p.GetTopic(), Partition: part, BaseOffset: first, LastOffset: last})
		}
		if err := s.Send(resp); err != nil {
			return err
		}
	}
}

// values returns the values written to partition 0.
func (rs *recordingStream) values() []string { return rs.partition(0) }

// partition returns the values written to partition part.
func (rs *recordingStream) partition(part int32) []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return slices.Clone(rs.got[part])
}

// Several goroutines produce to one partition with one request in flight
// at a time, while linger timers close batches too: each goroutine's
// records are written once each, in its order.
func TestProducerKeepsEachGoroutinesOrder(t *testing.T) {
	rec := &recordingStream{}
	f := &fakeBroker{streamFn: rec.serve}
	c := fakeClient(t, f)
	p := c.NewProducer(client.ProducerConfig{Linger: 50 * time.Microsecond, BatchBytes: 200, MaxInFlightRequests: 1, ManualPartitions: true, DeliveryTimeout: 10 * time.Second})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const producers, n = 4, 5000
	var wg sync.WaitGroup
	for g := range producers {
		wg.Go(func() {
			for i := range n {
				if err := p.Produce(ctx, &client.Record{Topic: "t", Value: fmt.Appendf(nil, "%d-%05d", g, i)}, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := rec.values()
	if len(got) != producers*n {
		t.Fatalf("broker got %d records, want %d", len(got), producers*n)
	}
	next := make([]int, producers)
	for i, v := range got {
		var g, seq int
		if _, err := fmt.Sscanf(v, "%d-%d", &g, &seq); err != nil || g < 0 || g >= producers {
			t.Fatalf("record %d written is %q", i, v)
		}
		if seq != next[g] {
			t.Fatalf("record %d written is %q, want producer %d's record %d next", i, v, g, next[g])
		}
		next[g]++
	}
}

// A batch's encoded bytes are pooled and reused once the batch is
// resolved: under streams that break before answering (retries, some of
// them while the Send on the broken stream may still be running) and
// answers that make the producer split batches, every batch the broker
// gets is intact and one partition's consecutive records, and every
// acknowledged record was received - a buffer reused too early would send
// another batch's bytes in its place.
func TestProducerSendsEveryBatchIntactWhileReusingBuffers(t *testing.T) {
	var mu sync.Mutex
	received := map[string]bool{}
	var requests atomic.Int64
	var bad []string
	f := &fakeBroker{}
	f.streamFn = func(n int32, s stratav1.ProduceService_ProduceStreamServer) error {
		for k := 0; ; k++ {
			req, err := s.Recv()
			if err != nil {
				return err
			}
			if k == 2+int(n%5) {
				return status.Error(codes.Unavailable, "broker restarting") // before answering
			}
			split := requests.Add(1)%5 == 0
			resp := &stratav1.ProduceResponse{RequestId: req.GetRequestId()}
			for _, p := range req.GetPartitions() {
				var vals []string
				err := segment.ForEachBatch(p.GetRecords(), func(_ segment.BatchHeader, b []byte) error {
					return segment.BatchRecords(b, func(r segment.Record) error {
						vals = append(vals, string(r.Value))
						return nil
					})
				})
				mu.Lock()
				for i := 1; err == nil && i < len(vals); i++ {
					var a, b int
					fmt.Sscanf(vals[i-1], "%d", &a)
					fmt.Sscanf(vals[i], "%d", &b)
					if b != a+1 {
						err = fmt.Errorf("record %q follows %q", vals[i], vals[i-1])
					}
				}
				if err != nil {
					bad = append(bad, err.Error())
				}
				res := &stratav1.PartitionResult{Topic: p.GetTopic(), Partition: p.GetPartition()}
				if split && len(vals) > 1 {
					res.Error = &stratav1.Error{Code: int32(codes.ResourceExhausted), Message: "batch above max.message.bytes"}
				} else {
					for _, v := range vals {
						received[v] = true
					}
				}
				mu.Unlock()
				resp.Partitions = append(resp.Partitions, res)
			}
			if err := s.Send(resp); err != nil {
				return err
			}
		}
	}
	c := fakeClient(t, f)
	p := c.NewProducer(client.ProducerConfig{Linger: 100 * time.Microsecond, BatchBytes: 400, ManualPartitions: true,
		RetryBackoff: time.Millisecond, Retries: 1000, DeliveryTimeout: 20 * time.Second})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 10000
	var failed atomic.Int64
	for i := range n {
		if err := p.Produce(ctx, &client.Record{Topic: "t", Value: fmt.Appendf(nil, "%08d", i)}, func(_ *client.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("%d batches received torn or mixed, the first: %s", len(bad), bad[0])
	}
	if failed.Load() != 0 {
		t.Fatalf("%d records failed", failed.Load())
	}
	for i := range n {
		if v := fmt.Sprintf("%08d", i); !received[v] {
			t.Fatalf("record %s acknowledged but never received", v)
		}
	}
	t.Logf("%d produce streams, %d requests answered", f.streams.Load(), requests.Load())
}

// Produce keeps the batch it added to last at hand for the next record;
// records that switch partitions in runs of every length must still each
// reach their own partition, in order.
func TestProducerRecordsReachTheirPartitionWhenSwitching(t *testing.T) {
	rec := &recordingStream{}
	f := &fakeBroker{streamFn: rec.serve}
	f.partitions.Store(3)
	c := fakeClient(t, f)
	p := c.NewProducer(client.ProducerConfig{Linger: 50 * time.Microsecond, BatchBytes: 300, ManualPartitions: true, DeliveryTimeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	want := map[int32][]string{}
	part, run := int32(0), 0
	for i := range 6000 {
		if run == 0 { // the next partition, for a run of 1 to 7 records
			part, run = int32(i*7%3), 1+i%7
		}
		run--
		v := fmt.Sprintf("%d-%05d", part, i)
		want[part] = append(want[part], v)
		if err := p.Produce(ctx, &client.Record{Topic: "t", Partition: part, Value: []byte(v)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p.Close()
	for part := range int32(3) {
		if got := rec.partition(part); !slices.Equal(got, want[part]) {
			t.Errorf("partition %d got %d records (first %.3q), want %d (first %.3q)", part, len(got), got, len(want[part]), want[part])
		}
	}
}

// Produce caches a topic's partition count; a metadata refresh that finds
// more partitions must reach the next record.
func TestProducerSeesPartitionsAddedByAMetadataRefresh(t *testing.T) {
	f := &fakeBroker{streamFn: okStream}
	c := fakeClient(t, f)
	p := c.NewProducer(client.ProducerConfig{Linger: time.Millisecond, ManualPartitions: true})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.ProduceSync(ctx, &client.Record{Topic: "t", Partition: 0, Value: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	err := p.Produce(ctx, &client.Record{Topic: "t", Partition: 2, Value: []byte("b")}, nil)
	if status.Code(err) != codes.NotFound {
		t.Fatalf("partition 2 of a 1-partition topic: got %v, want NotFound", err)
	}
	f.partitions.Store(3)
	if _, err := c.Metadata(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &client.Record{Topic: "t", Partition: 2, Value: []byte("c")}); err != nil {
		t.Fatalf("partition 2 after the refresh found 3: %v", err)
	}
}

// The cached partition count is one topic's: a record to another topic
// right after must be checked against that topic's own count.
func TestProducerChecksEachTopicsOwnPartitionCount(t *testing.T) {
	f := &fakeBroker{streamFn: okStream, alsoU: true}
	f.partitions.Store(3)
	c := fakeClient(t, f)
	p := c.NewProducer(client.ProducerConfig{Linger: time.Millisecond, ManualPartitions: true})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		if err := p.ProduceSync(ctx, &client.Record{Topic: "t", Partition: 2, Value: []byte("a")}); err != nil {
			t.Fatalf("partition 2 of t (3 partitions): %v", err)
		}
		err := p.Produce(ctx, &client.Record{Topic: "u", Partition: 2, Value: []byte("b")}, nil)
		if status.Code(err) != codes.NotFound {
			t.Fatalf("partition 2 of u (1 partition) right after t: got %v, want NotFound", err)
		}
		if err := p.ProduceSync(ctx, &client.Record{Topic: "u", Partition: 0, Value: []byte("c")}); err != nil {
			t.Fatalf("partition 0 of u: %v", err)
		}
	}
}
