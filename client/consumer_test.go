package client_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/client"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
)

func okList(r *stratav1.ListOffsetsRequest) *stratav1.ListOffsetsResponse {
	return &stratav1.ListOffsetsResponse{Partitions: []*stratav1.ListOffsetsResult{{Topic: "t", Partition: 0, Offset: 0, HighWatermark: 0}}}
}

// Regression: Poll(ctx) does not return when ctx ends while it waits in Recv: the
// stream is opened on context.Background().
func TestPollHonoursContext(t *testing.T) {
	f := &fakeBroker{listFn: okList}
	f.consumeFn = func(r *stratav1.ConsumeRequest, s stratav1.ConsumeService_ConsumeServer) error {
		<-s.Context().Done() // a hung broker (or a long MaxWait)
		return nil
	}
	c := fakeClient(t, f)
	pc := c.ConsumePartition("t", 0, client.Earliest(), client.ConsumerConfig{MaxWait: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := pc.Poll(ctx); done <- err }()
	select {
	case err := <-done:
		t.Logf("Poll returned %v", err)
	case <-time.After(2 * time.Second):
		t.Errorf("Poll with a 200ms ctx still blocked after 2s")
		pc.Close() // unblocks Recv
		<-done
	}
}

// Regression: resolving the start position goes to the cached leader forever: a
// NotLeader (or Unavailable) from ListOffsets never refreshes metadata.
func TestConsumerStartRefreshesLeader(t *testing.T) {
	b := &fakeBroker{listFn: okList}
	b.consumeFn = func(r *stratav1.ConsumeRequest, s stratav1.ConsumeService_ConsumeServer) error {
		return s.Send(&stratav1.ConsumeResponse{NextOffset: 0, HighWatermark: 0})
	}
	addrB := startFake(t, b)
	a := &fakeBroker{}
	a.listFn = func(r *stratav1.ListOffsetsRequest) *stratav1.ListOffsetsResponse {
		return &stratav1.ListOffsetsResponse{Partitions: []*stratav1.ListOffsetsResult{{Topic: "t", Offset: -1,
			Error: &stratav1.Error{Code: int32(codes.FailedPrecondition), Message: "not the leader"}}}}
	}
	addrA := startFake(t, a)
	// The first metadata answer names A (stale), later ones B.
	a.leaderAddr = func(n int32) (int32, string) {
		if n == 1 {
			return 1, addrA
		}
		return 2, addrB
	}
	b.leaderAddr = func(int32) (int32, string) { return 2, addrB }
	c, _ := client.New(client.Config{Brokers: []string{addrA}, Logger: slog.New(slog.DiscardHandler)})
	defer c.Close()
	pc := c.ConsumePartition("t", 0, client.Earliest(), client.ConsumerConfig{RetryBackoff: 10 * time.Millisecond})
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := pc.Poll(ctx)
	t.Logf("Poll: %v; metadata calls %d, ListOffsets on stale A %d, on B %d", err, a.metaCalls.Load(), a.listCalls.Load(), b.listCalls.Load())
	if err != nil {
		t.Errorf("consumer never moved to the new leader")
	}
}

// TestConsumerResetPolicy: a position below the log start (retention
// deleted it) is an OUT_OF_RANGE error without a reset policy; with
// ResetEarliest the consumer goes on from the log start.
func TestConsumerResetPolicy(t *testing.T) {
	const logStart = 100
	f := &fakeBroker{}
	f.listFn = func(r *stratav1.ListOffsetsRequest) *stratav1.ListOffsetsResponse {
		res := &stratav1.ListOffsetsResult{Topic: "t", Offset: logStart, LogStartOffset: logStart, HighWatermark: 101}
		if v, ok := r.GetPartitions()[0].GetSpec().GetSpec().(*stratav1.OffsetSpec_Offset); ok {
			res.Offset = v.Offset
			if v.Offset < logStart {
				res.Offset, res.Error = -1, &stratav1.Error{Code: int32(codes.OutOfRange), Message: "below the log start"}
			}
		}
		if _, ok := r.GetPartitions()[0].GetSpec().GetSpec().(*stratav1.OffsetSpec_Latest); ok {
			res.Offset = 101
		}
		return &stratav1.ListOffsetsResponse{Partitions: []*stratav1.ListOffsetsResult{res}}
	}
	f.consumeFn = func(r *stratav1.ConsumeRequest, s stratav1.ConsumeService_ConsumeServer) error {
		from := r.GetStart().GetOffset()
		if from < logStart {
			return status.Error(codes.OutOfRange, "offset below the log start")
		}
		b := segment.AppendBatch(nil, segment.NoProducer, []segment.Record{{Value: []byte("first kept")}})
		segment.SetBaseOffset(b, logStart)
		if from > logStart {
			b = nil
		}
		if err := s.Send(&stratav1.ConsumeResponse{Records: b, NextOffset: max(from, logStart+1), HighWatermark: logStart + 1, LogStartOffset: logStart}); err != nil {
			return err
		}
		<-s.Context().Done()
		return nil
	}
	c := fakeClient(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	none := c.ConsumePartition("t", 0, client.AtOffset(5), client.ConsumerConfig{})
	defer none.Close()
	if _, err := none.Poll(ctx); status.Code(err) != codes.OutOfRange {
		t.Fatalf("no reset policy: %v, want OUT_OF_RANGE", err)
	}
	early := c.ConsumePartition("t", 0, client.AtOffset(5), client.ConsumerConfig{Reset: client.ResetEarliest})
	defer early.Close()
	recs, err := early.Poll(ctx)
	if err != nil || len(recs) != 1 || recs[0].Offset != logStart || early.Resets() != 1 {
		t.Fatalf("ResetEarliest: %v %v (resets %d), want the record at the log start", recs, err, early.Resets())
	}
	late := c.ConsumePartition("t", 0, client.AtOffset(5), client.ConsumerConfig{Reset: client.ResetLatest})
	defer late.Close()
	if recs, err := late.Poll(ctx); err != nil || len(recs) != 0 || late.Position() != 101 {
		t.Fatalf("ResetLatest: %v %v at %d, want nothing at 101", recs, err, late.Position())
	}
}
