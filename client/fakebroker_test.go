package client_test

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/strata-stream/strata/client"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// fakeBroker serves metadata (leader chosen by leaderFn), produce and consume
// with pluggable behaviour.
type fakeBroker struct {
	stratav1.UnimplementedMetadataServiceServer
	stratav1.UnimplementedProduceServiceServer
	stratav1.UnimplementedConsumeServiceServer
	addr       string
	metaCalls  atomic.Int32
	partitions atomic.Int32 // of topic t in GetMetadata; 0 means 1
	alsoU      bool         // GetMetadata also serves topic u, one partition
	leaderAddr func(call int32) (id int32, addr string)
	streamFn   func(n int32, s stratav1.ProduceService_ProduceStreamServer) error
	streams    atomic.Int32
	listFn     func(*stratav1.ListOffsetsRequest) *stratav1.ListOffsetsResponse
	listCalls  atomic.Int32
	consumeFn  func(*stratav1.ConsumeRequest, stratav1.ConsumeService_ConsumeServer) error
}

func (f *fakeBroker) GetMetadata(ctx context.Context, r *stratav1.GetMetadataRequest) (*stratav1.GetMetadataResponse, error) {
	n := f.metaCalls.Add(1)
	id, addr := f.leaderAddr(n)
	parts := []*stratav1.PartitionMetadata{{Partition: 0, LeaderId: id}}
	for i := int32(1); i < f.partitions.Load(); i++ {
		parts = append(parts, &stratav1.PartitionMetadata{Partition: i, LeaderId: id})
	}
	topics := []*stratav1.TopicMetadata{{Name: "t", Partitions: parts}}
	if f.alsoU {
		topics = append(topics, &stratav1.TopicMetadata{Name: "u", Partitions: []*stratav1.PartitionMetadata{{Partition: 0, LeaderId: id}}})
	}
	return &stratav1.GetMetadataResponse{
		Brokers: []*stratav1.BrokerInfo{{Id: id, Address: addr}},
		Topics:  topics,
	}, nil
}

func (f *fakeBroker) ProduceStream(s stratav1.ProduceService_ProduceStreamServer) error {
	n := f.streams.Add(1)
	return f.streamFn(n, s)
}

func (f *fakeBroker) ListOffsets(ctx context.Context, r *stratav1.ListOffsetsRequest) (*stratav1.ListOffsetsResponse, error) {
	f.listCalls.Add(1)
	return f.listFn(r), nil
}

func (f *fakeBroker) Consume(r *stratav1.ConsumeRequest, s stratav1.ConsumeService_ConsumeServer) error {
	return f.consumeFn(r, s)
}

func startFake(t testing.TB, f *fakeBroker) string {
	serveFake(t, func(g *grpc.Server, addr string) {
		f.addr = addr
		stratav1.RegisterMetadataServiceServer(g, f)
		stratav1.RegisterProduceServiceServer(g, f)
		stratav1.RegisterConsumeServiceServer(g, f)
	})
	return f.addr
}

// fakeClient starts f as the only broker, leader of every partition, and
// returns a client of it, closed when t ends (before f stops).
func fakeClient(t testing.TB, f *fakeBroker) *client.Client {
	t.Helper()
	addr := startFake(t, f)
	f.leaderAddr = func(int32) (int32, string) { return 1, addr }
	c, err := client.New(client.Config{Brokers: []string{addr}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// serveFake serves, on a free 127.0.0.1 port until t ends, the services
// register adds; register learns the address before anything is served.
func serveFake(t testing.TB, register func(g *grpc.Server, addr string)) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	register(g, lis.Addr().String())
	go g.Serve(lis)
	t.Cleanup(g.Stop)
}

// okStream answers every request with success.
func okStream(_ int32, s stratav1.ProduceService_ProduceStreamServer) error {
	var off int64
	for {
		req, err := s.Recv()
		if err != nil {
			return err // io.EOF when the client closes: a clean end
		}
		resp := &stratav1.ProduceResponse{RequestId: req.GetRequestId()}
		for _, p := range req.GetPartitions() {
			resp.Partitions = append(resp.Partitions, &stratav1.PartitionResult{Topic: p.GetTopic(), Partition: p.GetPartition(), BaseOffset: off, LastOffset: off})
			off++
		}
		if err := s.Send(resp); err != nil {
			return err
		}
	}
}
