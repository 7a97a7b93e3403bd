package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/internal/etcdtest"
	"github.com/strata-stream/strata/metadata"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
)

// rpcTimeout bounds every unary call and stream the tests make.
const rpcTimeout = 10 * time.Second

// testBroker is one broker on a real embedded etcd, served over gRPC on a
// loopback listener, with a client connection to it.
type testBroker struct {
	srv     *Server
	dataDir string
	conn    *grpc.ClientConn
	admin   stratav1.AdminServiceClient
	produce stratav1.ProduceServiceClient
	consume stratav1.ConsumeServiceClient
	health  healthpb.HealthClient
}

// startBroker starts etcd, the broker and its gRPC server, waits (at most
// 30 s) until the broker is ready, and registers the teardown with
// t.Cleanup: the gRPC server stops, Run returns, etcd closes.
func startBroker(t *testing.T, opts ...func(*Config)) *testBroker {
	t.Helper()
	_, cli := etcdtest.Start(t)
	store := metadata.New(cli, "test")

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	cfg := Config{
		DataDir:       dataDir,
		BrokerID:      1,
		Advertise:     lis.Addr().String(),
		MaxPartitions: 100,
		// Reconcile constantly, so that every admin request below races
		// with it: a reconcile that read the topic list before a delete or
		// a recreate must neither resurrect nor clobber the topic.
		ReconcileInterval: 20 * time.Millisecond,
		Logger:            slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv := New(cfg, store, nil)
	g, health := srv.NewGRPCServer()
	if st, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || st.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health before Run: %v %v, want NOT_SERVING", st, err)
	}

	runCtx, cancelRun := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- srv.Run(runCtx) }()
	t.Cleanup(func() {
		cancelRun()
		select {
		case err := <-runDone:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return within 30s of its context ending")
		}
	})
	grpcDone := make(chan error, 1)
	go func() { grpcDone <- g.Serve(lis) }()
	t.Cleanup(func() {
		if !srv.StopGRPC(g, 10*time.Second) {
			t.Errorf("gRPC server did not stop gracefully within 10s")
		}
		if err := <-grpcDone; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for i := 0; !srv.Ready(); i++ {
		if i >= 600 || time.Now().After(deadline) {
			t.Fatal("broker not ready after 30s")
		}
		select {
		case err := <-runDone:
			t.Fatalf("Run returned before the broker was ready: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &testBroker{
		srv:     srv,
		dataDir: cfg.DataDir,
		conn:    conn,
		admin:   stratav1.NewAdminServiceClient(conn),
		produce: stratav1.NewProduceServiceClient(conn),
		consume: stratav1.NewConsumeServiceClient(conn),
		health:  healthpb.NewHealthClient(conn),
	}
}

func rpcCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	t.Cleanup(cancel)
	return ctx
}

// batch encodes values as one uncompressed batch.
func batch(values ...string) []byte {
	recs := make([]segment.Record, len(values))
	for i, v := range values {
		recs[i] = segment.Record{Value: []byte(v)}
	}
	return segment.AppendBatch(nil, segment.NoProducer, recs)
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("%s: code %v, want %v (err %v)", what, got, want, err)
	}
}

func (b *testBroker) createTopic(t *testing.T, name string, partitions int32, cfg map[string]string) *stratav1.TopicDescription {
	t.Helper()
	resp, err := b.admin.CreateTopic(rpcCtx(t), &stratav1.CreateTopicRequest{Name: name, Partitions: partitions, Config: cfg})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return resp.GetTopic()
}

// produceOK produces one request of records to topic/p with acks leader
// and returns the partition's result, failing on any error.
func (b *testBroker) produceOK(t *testing.T, topic string, p int32, records []byte) *stratav1.PartitionResult {
	t.Helper()
	resp, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{
		Acks:       stratav1.Acks_ACKS_LEADER,
		Partitions: []*stratav1.PartitionRecords{{Topic: topic, Partition: p, Records: records}},
	})
	if err != nil {
		t.Fatalf("produce to %s/%d: %v", topic, p, err)
	}
	if len(resp.GetPartitions()) != 1 {
		t.Fatalf("produce to %s/%d: %d results", topic, p, len(resp.GetPartitions()))
	}
	r := resp.GetPartitions()[0]
	if r.GetError() != nil {
		t.Fatalf("produce to %s/%d: %v", topic, p, r.GetError())
	}
	return r
}

// listOffset resolves spec on topic/p, failing on any error.
func (b *testBroker) listOffset(t *testing.T, topic string, p int32, spec *stratav1.OffsetSpec) *stratav1.ListOffsetsResult {
	t.Helper()
	resp, err := b.consume.ListOffsets(rpcCtx(t), &stratav1.ListOffsetsRequest{
		Partitions: []*stratav1.ListOffsetsPartition{{Topic: topic, Partition: p, Spec: spec}},
	})
	if err != nil {
		t.Fatalf("ListOffsets %s/%d: %v", topic, p, err)
	}
	r := resp.GetPartitions()[0]
	if r.GetError() != nil {
		t.Fatalf("ListOffsets %s/%d: %v", topic, p, r.GetError())
	}
	return r
}

func latest() *stratav1.OffsetSpec {
	return &stratav1.OffsetSpec{Spec: &stratav1.OffsetSpec_Latest{Latest: true}}
}

func earliest() *stratav1.OffsetSpec {
	return &stratav1.OffsetSpec{Spec: &stratav1.OffsetSpec_Earliest{Earliest: true}}
}

func exact(o int64) *stratav1.OffsetSpec {
	return &stratav1.OffsetSpec{Spec: &stratav1.OffsetSpec_Offset{Offset: o}}
}

// consumeRange reads topic/p from offset from until end (exclusive) and
// returns the batch bytes as served. It gives up after 100 responses.
func (b *testBroker) consumeRange(t *testing.T, topic string, p int32, from, end int64) []byte {
	t.Helper()
	if from >= end {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	stream, err := b.consume.Consume(ctx, &stratav1.ConsumeRequest{Topic: topic, Partition: p, Start: exact(from), MaxWaitMs: 100})
	if err != nil {
		t.Fatalf("consume %s/%d: %v", topic, p, err)
	}
	var out []byte
	next := from
	for i := 0; next < end; i++ {
		if i >= 100 {
			t.Fatalf("consume %s/%d: at %d after 100 responses, want %d", topic, p, next, end)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("consume %s/%d at %d: %v", topic, p, next, err)
		}
		out = append(out, resp.GetRecords()...)
		next = resp.GetNextOffset()
	}
	if next != end {
		t.Fatalf("consume %s/%d: next offset %d, want %d", topic, p, next, end)
	}
	return out
}

// values decodes batches and returns the values of the records at or
// after from, checking that offsets are contiguous.
func values(t *testing.T, batches []byte, from int64) []string {
	t.Helper()
	var out []string
	next := int64(-1)
	err := segment.ForEachBatch(batches, func(_ segment.BatchHeader, b []byte) error {
		return segment.BatchRecords(b, func(r segment.Record) error {
			if next >= 0 && r.Offset != next {
				return fmt.Errorf("record at offset %d, want %d", r.Offset, next)
			}
			next = r.Offset + 1
			if r.Offset >= from {
				out = append(out, string(r.Value))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("decode consumed batches: %v", err)
	}
	return out
}

// partitionSnapshot is what a partition holds as seen by clients.
type partitionSnapshot struct {
	start, end int64
	data       []byte
}

// snapshot reads every partition of topic: offsets (from ListOffsets and
// DescribeTopic, which must agree) and the served bytes.
func (b *testBroker) snapshot(t *testing.T, topic string) []partitionSnapshot {
	t.Helper()
	d, err := b.admin.DescribeTopic(rpcCtx(t), &stratav1.DescribeTopicRequest{Name: topic})
	if err != nil {
		t.Fatalf("describe %s: %v", topic, err)
	}
	var out []partitionSnapshot
	for _, pd := range d.GetTopic().GetPartitions() {
		p := pd.GetPartition()
		start := b.listOffset(t, topic, p, earliest()).GetOffset()
		end := b.listOffset(t, topic, p, latest()).GetOffset()
		if start != pd.GetLogStartOffset() || end != pd.GetLogEndOffset() {
			t.Fatalf("%s/%d: ListOffsets [%d, %d), DescribeTopic [%d, %d)", topic, p, start, end, pd.GetLogStartOffset(), pd.GetLogEndOffset())
		}
		out = append(out, partitionSnapshot{start: start, end: end, data: b.consumeRange(t, topic, p, start, end)})
	}
	return out
}

func sameSnapshot(t *testing.T, what string, got, want []partitionSnapshot) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d partitions, want %d", what, len(got), len(want))
	}
	for p := range want {
		g, w := got[p], want[p]
		if g.start != w.start || g.end != w.end {
			t.Fatalf("%s: partition %d offsets [%d, %d), want [%d, %d)", what, p, g.start, g.end, w.start, w.end)
		}
		if !bytes.Equal(g.data, w.data) {
			t.Fatalf("%s: partition %d data changed (%d bytes, was %d)", what, p, len(g.data), len(w.data))
		}
	}
}

// TestBroker runs every scenario against one broker: starting etcd is
// the expensive part. Each subtest uses its own topics.
func TestBroker(t *testing.T) {
	b := startBroker(t)
	t.Run("Health", func(t *testing.T) { testHealth(t, b) })
	t.Run("CreateTopicValidation", func(t *testing.T) { testCreateTopicValidation(t, b) })
	t.Run("ProduceErrorsWriteNothing", func(t *testing.T) { testProduceErrors(t, b) })
	t.Run("ProduceConsume", func(t *testing.T) { testProduceConsume(t, b) })
	t.Run("LongPoll", func(t *testing.T) { testLongPoll(t, b) })
	t.Run("ProduceStream", func(t *testing.T) { testProduceStream(t, b) })
	t.Run("DeleteRecreate", func(t *testing.T) { testDeleteRecreate(t, b) })
}

// testHealth checks the wiring of the health service. The SERVING status
// itself is set by the harness once Ready, as cmd/strata/serve.go does;
// the broker package does not set it.
func testHealth(t *testing.T, b *testBroker) {
	resp, err := b.health.Check(rpcCtx(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v, want SERVING", resp.GetStatus())
	}
	if !b.srv.Ready() {
		t.Fatal("broker not ready")
	}
}

func testCreateTopicValidation(t *testing.T, b *testBroker) {
	ok := map[string]string{ConfigRetentionMs: "60000"}
	cases := []struct {
		name       string
		topic      string
		partitions int32
		config     map[string]string
		want       codes.Code
	}{
		{"empty name", "", 1, nil, codes.InvalidArgument},
		{"space in name", "a b", 1, nil, codes.InvalidArgument},
		{"dot", ".", 1, nil, codes.InvalidArgument},
		{"dot dot", "..", 1, nil, codes.InvalidArgument},
		{"slash", "a/b", 1, nil, codes.InvalidArgument},
		{"300 characters", strings.Repeat("a", 300), 1, nil, codes.InvalidArgument},
		{"250 characters", strings.Repeat("b", 250), 1, nil, codes.InvalidArgument},
		{"zero partitions", "zero-parts", 0, nil, codes.InvalidArgument},
		{"negative partitions", "neg-parts", -1, nil, codes.InvalidArgument},
		{"above max partitions", "too-many-parts", 101, nil, codes.InvalidArgument},
		{"unknown config key", "bad-key", 1, map[string]string{"no.such.key": "1"}, codes.InvalidArgument},
		{"bad config value", "bad-value", 1, map[string]string{ConfigMaxMessageBytes: "abc"}, codes.InvalidArgument},
		{"config value out of range", "bad-range", 1, map[string]string{ConfigMaxMessageBytes: "10"}, codes.InvalidArgument},
		{"bad enum value", "bad-enum", 1, map[string]string{ConfigAcks: "some"}, codes.InvalidArgument},
		{"message above segment", "bad-combo", 1, map[string]string{ConfigSegmentBytes: "1000", ConfigMaxMessageBytes: "2000"}, codes.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.admin.CreateTopic(rpcCtx(t), &stratav1.CreateTopicRequest{Name: tc.topic, Partitions: tc.partitions, Config: tc.config})
			wantCode(t, "CreateTopic", err, tc.want)
			if metadata.ValidateTopicName(tc.topic) == nil {
				_, err := b.admin.DescribeTopic(rpcCtx(t), &stratav1.DescribeTopicRequest{Name: tc.topic})
				wantCode(t, "DescribeTopic after a refused create", err, codes.NotFound)
			}
		})
	}

	t.Run("valid", func(t *testing.T) {
		name := strings.Repeat("v", metadata.MaxTopicNameLength-6) + ".ok-_9"
		created := b.createTopic(t, name, 3, ok)
		if created.GetName() != name || created.GetId() == "" || len(created.GetPartitions()) != 3 {
			t.Fatalf("created %v", created)
		}
		d, err := b.admin.DescribeTopic(rpcCtx(t), &stratav1.DescribeTopicRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		desc := d.GetTopic()
		if desc.GetId() != created.GetId() {
			t.Fatalf("describe id %q, create id %q", desc.GetId(), created.GetId())
		}
		wantCfg := DefaultTopicConfig.Map()
		wantCfg[ConfigRetentionMs] = "60000"
		if !maps.Equal(desc.GetConfig(), wantCfg) {
			t.Fatalf("config %v, want %v", desc.GetConfig(), wantCfg)
		}
		if len(desc.GetPartitions()) != 3 {
			t.Fatalf("%d partitions, want 3", len(desc.GetPartitions()))
		}
		for i, pd := range desc.GetPartitions() {
			if pd.GetPartition() != int32(i) || pd.GetLeaderId() != 1 || pd.GetLeaderEpoch() < 1 || pd.GetLogStartOffset() != 0 || pd.GetLogEndOffset() != 0 {
				t.Fatalf("partition %d: %v", i, pd)
			}
		}
		lt, err := b.admin.ListTopics(rpcCtx(t), &stratav1.ListTopicsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ts := range lt.GetTopics() {
			found = found || ts.GetName() == name && ts.GetPartitions() == 3
		}
		if !found {
			t.Fatalf("ListTopics %v lacks %s", lt.GetTopics(), name)
		}

		_, err = b.admin.CreateTopic(rpcCtx(t), &stratav1.CreateTopicRequest{Name: name, Partitions: 1})
		wantCode(t, "duplicate CreateTopic", err, codes.AlreadyExists)
		d2, err := b.admin.DescribeTopic(rpcCtx(t), &stratav1.DescribeTopicRequest{Name: name})
		if err != nil || d2.GetTopic().GetId() != created.GetId() || len(d2.GetTopic().GetPartitions()) != 3 {
			t.Fatalf("after duplicate create: %v, %v", d2, err)
		}
	})

	t.Run("describe unknown", func(t *testing.T) {
		_, err := b.admin.DescribeTopic(rpcCtx(t), &stratav1.DescribeTopicRequest{Name: "no-such-topic"})
		wantCode(t, "DescribeTopic", err, codes.NotFound)
		_, err = b.admin.DescribeTopic(rpcCtx(t), &stratav1.DescribeTopicRequest{Name: "a b"})
		wantCode(t, "DescribeTopic", err, codes.InvalidArgument)
	})
}

// crc32cTable recomputes batch CRCs for hand-modified batches.
var crc32cTable = crc32.MakeTable(crc32.Castagnoli)

func testProduceErrors(t *testing.T, b *testBroker) {
	const topic = "produce-errors"
	b.createTopic(t, topic, 2, map[string]string{ConfigMaxMessageBytes: "1024"})
	// Good data first, so that damage to it would show.
	b.produceOK(t, topic, 0, batch("p0-a", "p0-b"))
	b.produceOK(t, topic, 0, batch("p0-c"))
	b.produceOK(t, topic, 1, batch("p1-a"))
	before := b.snapshot(t, topic)
	if before[0].end != 3 || before[1].end != 1 {
		t.Fatalf("seeded ends %d, %d; want 3, 1", before[0].end, before[1].end)
	}
	if got := values(t, before[0].data, 0); !slices.Equal(got, []string{"p0-a", "p0-b", "p0-c"}) {
		t.Fatalf("seeded values %q", got)
	}

	good := batch("good")
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 0x01
	compressed := bytes.Clone(good)
	binary.BigEndian.PutUint16(compressed[21:], 1) // gzip
	binary.BigEndian.PutUint32(compressed[17:], crc32.Checksum(compressed[21:], crc32cTable))
	badMagic := bytes.Clone(good)
	badMagic[16] = 1
	garbage := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 32) // length field is negative
	big := batch(strings.Repeat("x", 4096))

	one := func(topic string, p int32, records []byte) []*stratav1.PartitionRecords {
		return []*stratav1.PartitionRecords{{Topic: topic, Partition: p, Records: records}}
	}
	cases := []struct {
		name  string
		parts []*stratav1.PartitionRecords
		want  []codes.Code // per partition
	}{
		{"unknown topic", one("no-such-topic", 0, good), []codes.Code{codes.NotFound}},
		{"invalid topic name", one("a b", 0, good), []codes.Code{codes.InvalidArgument}},
		{"partition -1", one(topic, -1, good), []codes.Code{codes.NotFound}},
		{"partition N", one(topic, 2, good), []codes.Code{codes.NotFound}},
		{"no records", one(topic, 0, nil), []codes.Code{codes.InvalidArgument}},
		{"garbage", one(topic, 0, garbage), []codes.Code{codes.InvalidArgument}},
		{"short garbage", one(topic, 0, []byte{1, 2, 3}), []codes.Code{codes.InvalidArgument}},
		{"crc mismatch", one(topic, 0, flipped), []codes.Code{codes.InvalidArgument}},
		{"truncated batch", one(topic, 0, good[:len(good)-3]), []codes.Code{codes.InvalidArgument}},
		{"truncated header", one(topic, 0, good[:20]), []codes.Code{codes.InvalidArgument}},
		{"bad magic", one(topic, 0, badMagic), []codes.Code{codes.InvalidArgument}},
		{"compressed", one(topic, 0, compressed), []codes.Code{codes.InvalidArgument}},
		{"good batch then trailing bytes", one(topic, 0, append(bytes.Clone(good), 0, 0, 0)), []codes.Code{codes.InvalidArgument}},
		{"good batch then bad batch", one(topic, 0, append(bytes.Clone(good), flipped...)), []codes.Code{codes.InvalidArgument}},
		{"above max.message.bytes", one(topic, 0, big), []codes.Code{codes.ResourceExhausted}},
		{"good batch then one above max.message.bytes", one(topic, 1, append(bytes.Clone(good), big...)), []codes.Code{codes.ResourceExhausted}},
		{"two bad partitions", []*stratav1.PartitionRecords{
			{Topic: topic, Partition: 0, Records: flipped},
			{Topic: topic, Partition: 1, Records: big},
		}, []codes.Code{codes.InvalidArgument, codes.ResourceExhausted}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{Acks: stratav1.Acks_ACKS_LEADER, Partitions: tc.parts})
			if err != nil {
				t.Fatalf("request failed as a whole: %v", err)
			}
			if len(resp.GetPartitions()) != len(tc.want) {
				t.Fatalf("%d results, want %d", len(resp.GetPartitions()), len(tc.want))
			}
			for i, r := range resp.GetPartitions() {
				if r.GetTopic() != tc.parts[i].GetTopic() || r.GetPartition() != tc.parts[i].GetPartition() {
					t.Fatalf("result %d is for %s/%d", i, r.GetTopic(), r.GetPartition())
				}
				if got := codes.Code(r.GetError().GetCode()); r.GetError() == nil || got != tc.want[i] {
					t.Fatalf("result %d: error %v, want code %v", i, r.GetError(), tc.want[i])
				}
				if r.GetBaseOffset() != -1 || r.GetLastOffset() != -1 {
					t.Fatalf("result %d: failed partition reports offsets [%d, %d]", i, r.GetBaseOffset(), r.GetLastOffset())
				}
			}
			sameSnapshot(t, "after "+tc.name, b.snapshot(t, topic), before)
		})
	}

	t.Run("request errors", func(t *testing.T) {
		for _, req := range []*stratav1.ProduceRequest{
			{Acks: stratav1.Acks_ACKS_LEADER},
			{Acks: stratav1.Acks(99), Partitions: one(topic, 0, good)},
		} {
			_, err := b.produce.Produce(rpcCtx(t), req)
			wantCode(t, "Produce", err, codes.InvalidArgument)
			sameSnapshot(t, "after a refused request", b.snapshot(t, topic), before)
		}
	})

	t.Run("good and bad partition", func(t *testing.T) {
		resp, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{
			Acks: stratav1.Acks_ACKS_LEADER,
			Partitions: []*stratav1.PartitionRecords{
				{Topic: topic, Partition: 0, Records: batch("p0-d", "p0-e")},
				{Topic: topic, Partition: 1, Records: flipped},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		r0, r1 := resp.GetPartitions()[0], resp.GetPartitions()[1]
		if r0.GetError() != nil || r0.GetBaseOffset() != 3 || r0.GetLastOffset() != 4 {
			t.Fatalf("good partition: %v", r0)
		}
		if codes.Code(r1.GetError().GetCode()) != codes.InvalidArgument || r1.GetBaseOffset() != -1 {
			t.Fatalf("bad partition: %v", r1)
		}
		after := b.snapshot(t, topic)
		sameSnapshot(t, "partition 1", after[1:], before[1:])
		if after[0].end != 5 || !bytes.HasPrefix(after[0].data, before[0].data) {
			t.Fatalf("partition 0: end %d, old data kept %v", after[0].end, bytes.HasPrefix(after[0].data, before[0].data))
		}
		if got := values(t, after[0].data, 0); !slices.Equal(got, []string{"p0-a", "p0-b", "p0-c", "p0-d", "p0-e"}) {
			t.Fatalf("partition 0 values %q", got)
		}
	})
}

func testProduceConsume(t *testing.T, b *testBroker) {
	const topic = "produce-consume"
	b.createTopic(t, topic, 1, nil)
	var want []string
	next := int64(0)
	sizes := []int{1, 3, 1, 5, 2}
	for i, n := range sizes {
		vals := make([]string, n)
		for j := range vals {
			vals[j] = fmt.Sprintf("r%d-%d", i, j)
		}
		r := b.produceOK(t, topic, 0, batch(vals...))
		if r.GetBaseOffset() != next || r.GetLastOffset() != next+int64(n)-1 {
			t.Fatalf("request %d: offsets [%d, %d], want [%d, %d]", i, r.GetBaseOffset(), r.GetLastOffset(), next, next+int64(n)-1)
		}
		next += int64(n)
		want = append(want, vals...)
	}
	// Two batches in one request: offsets span both.
	two := append(batch("c0", "c1"), batch("c2")...)
	r := b.produceOK(t, topic, 0, two)
	if r.GetBaseOffset() != next || r.GetLastOffset() != next+2 {
		t.Fatalf("two batches: offsets [%d, %d], want [%d, %d]", r.GetBaseOffset(), r.GetLastOffset(), next, next+2)
	}
	next += 3
	want = append(want, "c0", "c1", "c2")
	end := next

	t.Run("ListOffsets", func(t *testing.T) {
		e := b.listOffset(t, topic, 0, earliest())
		l := b.listOffset(t, topic, 0, latest())
		if e.GetOffset() != 0 || l.GetOffset() != end || l.GetHighWatermark() != end || l.GetLogStartOffset() != 0 {
			t.Fatalf("earliest %v, latest %v; want 0 and %d", e, l, end)
		}
		resp, err := b.consume.ListOffsets(rpcCtx(t), &stratav1.ListOffsetsRequest{Partitions: []*stratav1.ListOffsetsPartition{
			{Topic: "no-such-topic", Partition: 0, Spec: latest()},
			{Topic: topic, Partition: 1, Spec: latest()},
			{Topic: topic, Partition: 0},
			{Topic: topic, Partition: 0, Spec: latest()},
		}})
		if err != nil {
			t.Fatal(err)
		}
		wantCodes := []codes.Code{codes.NotFound, codes.NotFound, codes.InvalidArgument, codes.OK}
		for i, r := range resp.GetPartitions() {
			if got := codes.Code(r.GetError().GetCode()); got != wantCodes[i] {
				t.Fatalf("ListOffsets result %d: %v, want %v", i, r.GetError(), wantCodes[i])
			}
		}
		if resp.GetPartitions()[3].GetOffset() != end {
			t.Fatalf("latest %d, want %d", resp.GetPartitions()[3].GetOffset(), end)
		}
		_, err = b.consume.ListOffsets(rpcCtx(t), &stratav1.ListOffsetsRequest{})
		wantCode(t, "empty ListOffsets", err, codes.InvalidArgument)
	})

	t.Run("from 0", func(t *testing.T) {
		if got := values(t, b.consumeRange(t, topic, 0, 0, end), 0); !slices.Equal(got, want) {
			t.Fatalf("consumed %q, want %q", got, want)
		}
	})

	t.Run("from the middle", func(t *testing.T) {
		// Offset 2 is inside the second batch: the whole batch comes back
		// and the client skips what is below the start.
		if got := values(t, b.consumeRange(t, topic, 0, 2, end), 2); !slices.Equal(got, want[2:]) {
			t.Fatalf("consumed %q, want %q", got, want[2:])
		}
	})

	recvFirst := func(t *testing.T, req *stratav1.ConsumeRequest) (*stratav1.ConsumeResponse, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		defer cancel()
		stream, err := b.consume.Consume(ctx, req)
		if err != nil {
			return nil, err
		}
		return stream.Recv()
	}

	t.Run("earliest", func(t *testing.T) {
		resp, err := recvFirst(t, &stratav1.ConsumeRequest{Topic: topic, Start: earliest(), MaxWaitMs: 100})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetNextOffset() != end || resp.GetHighWatermark() != end || resp.GetLogStartOffset() != 0 {
			t.Fatalf("response next %d, hwm %d, start %d", resp.GetNextOffset(), resp.GetHighWatermark(), resp.GetLogStartOffset())
		}
		if got := values(t, resp.GetRecords(), 0); !slices.Equal(got, want) {
			t.Fatalf("consumed %q, want %q", got, want)
		}
	})

	t.Run("latest", func(t *testing.T) {
		resp, err := recvFirst(t, &stratav1.ConsumeRequest{Topic: topic, Start: latest(), MaxWaitMs: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetRecords()) != 0 || resp.GetNextOffset() != end || resp.GetHighWatermark() != end {
			t.Fatalf("latest: %d bytes, next %d, hwm %d", len(resp.GetRecords()), resp.GetNextOffset(), resp.GetHighWatermark())
		}
	})

	t.Run("at the end", func(t *testing.T) {
		resp, err := recvFirst(t, &stratav1.ConsumeRequest{Topic: topic, Start: exact(end), MaxWaitMs: 100})
		if err != nil || len(resp.GetRecords()) != 0 || resp.GetNextOffset() != end {
			t.Fatalf("at the end: %v, %v", resp, err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		cases := []struct {
			name string
			req  *stratav1.ConsumeRequest
			want codes.Code
		}{
			{"beyond the end", &stratav1.ConsumeRequest{Topic: topic, Start: exact(end + 1)}, codes.OutOfRange},
			{"far beyond the end", &stratav1.ConsumeRequest{Topic: topic, Start: exact(1 << 40)}, codes.OutOfRange},
			{"negative offset", &stratav1.ConsumeRequest{Topic: topic, Start: exact(-1)}, codes.OutOfRange},
			{"unknown topic", &stratav1.ConsumeRequest{Topic: "no-such-topic", Start: earliest()}, codes.NotFound},
			{"invalid topic name", &stratav1.ConsumeRequest{Topic: "a/b", Start: earliest()}, codes.InvalidArgument},
			{"unknown partition", &stratav1.ConsumeRequest{Topic: topic, Partition: 1, Start: earliest()}, codes.NotFound},
			{"negative partition", &stratav1.ConsumeRequest{Topic: topic, Partition: -1, Start: earliest()}, codes.NotFound},
			{"no start", &stratav1.ConsumeRequest{Topic: topic}, codes.InvalidArgument},
			{"negative max bytes", &stratav1.ConsumeRequest{Topic: topic, Start: earliest(), MaxBytes: -1}, codes.InvalidArgument},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				_, err := recvFirst(t, tc.req)
				wantCode(t, "Consume", err, tc.want)
			})
		}
	})
}

func testLongPoll(t *testing.T, b *testBroker) {
	const topic = "long-poll"
	b.createTopic(t, topic, 2, nil)

	t.Run("wakes on produce", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		defer cancel()
		start := time.Now()
		stream, err := b.consume.Consume(ctx, &stratav1.ConsumeRequest{Topic: topic, Start: latest(), MaxWaitMs: 2000})
		if err != nil {
			t.Fatal(err)
		}
		// The stream resolves "latest" when the request arrives; a record
		// produced 200 ms later must wake the poll.
		produced := make(chan error, 1)
		go func() {
			time.Sleep(200 * time.Millisecond)
			_, err := b.produce.Produce(ctx, &stratav1.ProduceRequest{
				Acks:       stratav1.Acks_ACKS_LEADER,
				Partitions: []*stratav1.PartitionRecords{{Topic: topic, Records: batch("late")}},
			})
			produced <- err
		}()
		resp, err := stream.Recv()
		elapsed := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if perr := <-produced; perr != nil {
			t.Fatal(perr)
		}
		if elapsed > 1500*time.Millisecond {
			t.Fatalf("record arrived after %v, want well before the 2s wait ends", elapsed)
		}
		if got := values(t, resp.GetRecords(), 0); !slices.Equal(got, []string{"late"}) || resp.GetNextOffset() != 1 {
			t.Fatalf("received %q, next %d", got, resp.GetNextOffset())
		}
	})

	t.Run("empty after max wait", func(t *testing.T) {
		const maxWait = 1000 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		defer cancel()
		start := time.Now()
		stream, err := b.consume.Consume(ctx, &stratav1.ConsumeRequest{Topic: topic, Partition: 1, Start: latest(), MaxWaitMs: uint32(maxWait / time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		elapsed := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if elapsed < maxWait*9/10 || elapsed > 5*time.Second {
			t.Fatalf("empty response after %v, want about %v", elapsed, maxWait)
		}
		if len(resp.GetRecords()) != 0 || resp.GetNextOffset() != 0 || resp.GetHighWatermark() != 0 {
			t.Fatalf("empty poll: %d bytes, next %d, hwm %d", len(resp.GetRecords()), resp.GetNextOffset(), resp.GetHighWatermark())
		}
	})
}

func testProduceStream(t *testing.T, b *testBroker) {
	const topic = "produce-stream"
	const n = 50
	b.createTopic(t, topic, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	stream, err := b.produce.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range n {
		vals := make([]string, i%3+1)
		for j := range vals {
			vals[j] = fmt.Sprintf("s%d-%d", i, j)
		}
		want = append(want, vals...)
		if err := stream.Send(&stratav1.ProduceRequest{
			RequestId:  uint64(1000 + i),
			Acks:       stratav1.Acks_ACKS_LEADER,
			Partitions: []*stratav1.PartitionRecords{{Topic: topic, Records: batch(vals...)}},
		}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for i := range n {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if resp.GetRequestId() != uint64(1000+i) {
			t.Fatalf("response %d has request id %d", i, resp.GetRequestId())
		}
		r := resp.GetPartitions()[0]
		count := int64(i%3 + 1)
		if r.GetError() != nil || r.GetBaseOffset() != next || r.GetLastOffset() != next+count-1 {
			t.Fatalf("response %d: %v, want offsets [%d, %d]", i, r, next, next+count-1)
		}
		next += count
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after %d responses: %v, want EOF", n, err)
	}
	if got := values(t, b.consumeRange(t, topic, 0, 0, next), 0); !slices.Equal(got, want) {
		t.Fatalf("consumed %q, want %q", got, want)
	}

	// acks=none needs no wait, acks=leader waits for an fsync (this
	// broker's sync policy is always): the answers come in request order
	// all the same.
	t.Run("answers in request order across acks", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		defer cancel()
		stream, err := b.produce.ProduceStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		const m = 60
		for i := range m {
			acks := stratav1.Acks_ACKS_NONE
			if i%3 == 1 {
				acks = stratav1.Acks_ACKS_LEADER
			}
			if err := stream.Send(&stratav1.ProduceRequest{RequestId: uint64(i), Acks: acks,
				Partitions: []*stratav1.PartitionRecords{{Topic: topic, Records: batch(fmt.Sprintf("mixed-%d", i))}}}); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		for i := range m {
			resp, err := stream.Recv()
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			if r := resp.GetPartitions()[0]; resp.GetRequestId() != uint64(i) || r.GetError() != nil || r.GetBaseOffset() != next {
				t.Fatalf("response %d: request id %d, %v; want request %d at offset %d", i, resp.GetRequestId(), r, i, next)
			}
			next++
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("after %d responses: %v, want EOF", m, err)
		}
	})

	t.Run("bad request ends the stream", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		defer cancel()
		stream, err := b.produce.ProduceStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		good := &stratav1.ProduceRequest{RequestId: 1, Acks: stratav1.Acks_ACKS_LEADER, Partitions: []*stratav1.PartitionRecords{{Topic: topic, Records: batch("last")}}}
		for _, req := range []*stratav1.ProduceRequest{good, {RequestId: 2}} {
			if err := stream.Send(req); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := stream.Recv()
		if err != nil || resp.GetRequestId() != 1 || resp.GetPartitions()[0].GetBaseOffset() != next {
			t.Fatalf("first response %v, %v", resp, err)
		}
		_, err = stream.Recv()
		wantCode(t, "stream after an empty request", err, codes.InvalidArgument)
	})
}

func testDeleteRecreate(t *testing.T, b *testBroker) {
	const topic = "delete-me"
	first := b.createTopic(t, topic, 1, nil)
	for i := range 3 {
		b.produceOK(t, topic, 0, batch(fmt.Sprintf("old-%d", i)))
	}
	oldDir := filepath.Join(b.dataDir, "logs", topic+"."+first.GetId())
	if _, err := os.Stat(oldDir); err != nil {
		t.Fatalf("topic data: %v", err)
	}
	if _, err := b.admin.DeleteTopic(rpcCtx(t), &stratav1.DeleteTopicRequest{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(oldDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("topic data after delete: %v", err)
	}

	resp, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{
		Acks:       stratav1.Acks_ACKS_LEADER,
		Partitions: []*stratav1.PartitionRecords{{Topic: topic, Records: batch("after-delete")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.GetPartitions()[0]; codes.Code(r.GetError().GetCode()) != codes.NotFound {
		t.Fatalf("produce after delete: %v", r)
	}
	_, err = b.admin.DescribeTopic(rpcCtx(t), &stratav1.DescribeTopicRequest{Name: topic})
	wantCode(t, "describe after delete", err, codes.NotFound)
	_, err = b.admin.DeleteTopic(rpcCtx(t), &stratav1.DeleteTopicRequest{Name: topic})
	wantCode(t, "delete twice", err, codes.NotFound)
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	stream, err := b.consume.Consume(ctx, &stratav1.ConsumeRequest{Topic: topic, Start: earliest()})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, "consume after delete", err, codes.NotFound)

	second := b.createTopic(t, topic, 1, nil)
	if second.GetId() == first.GetId() {
		t.Fatalf("recreated topic kept id %s", first.GetId())
	}
	if pd := second.GetPartitions()[0]; pd.GetLogStartOffset() != 0 || pd.GetLogEndOffset() != 0 {
		t.Fatalf("recreated partition: %v", pd)
	}
	r := b.produceOK(t, topic, 0, batch("new-0"))
	if r.GetBaseOffset() != 0 || r.GetLastOffset() != 0 {
		t.Fatalf("first produce to recreated topic at [%d, %d], want [0, 0]", r.GetBaseOffset(), r.GetLastOffset())
	}
	if got := values(t, b.consumeRange(t, topic, 0, 0, 1), 0); !slices.Equal(got, []string{"new-0"}) {
		t.Fatalf("recreated topic holds %q", got)
	}
}

// TestTopicChurnRacesReconcile deletes and recreates a topic while the
// broker reconciles every millisecond: a reconcile working from a topic
// list read before a delete or recreate must not resurrect the deleted
// topic, drop the new one, or leave its leadership stuck.
func TestTopicChurnRacesReconcile(t *testing.T) {
	b := startBroker(t, func(c *Config) { c.ReconcileInterval = time.Millisecond })
	rec := segment.AppendBatch(nil, segment.NoProducer, []segment.Record{{Value: []byte("v")}})
	produce := func() *stratav1.PartitionResult {
		t.Helper()
		r, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{Acks: stratav1.Acks_ACKS_LEADER,
			Partitions: []*stratav1.PartitionRecords{{Topic: "churn", Records: bytes.Clone(rec)}}})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetPartitions()[0]
	}
	for i := range 100 {
		if _, err := b.admin.CreateTopic(rpcCtx(t), &stratav1.CreateTopicRequest{Name: "churn", Partitions: 1}); err != nil {
			t.Fatalf("iteration %d: create: %v", i, err)
		}
		if r := produce(); r.GetError() != nil || r.GetBaseOffset() != 0 {
			t.Fatalf("iteration %d: produce to the new topic: offset %d, error %v", i, r.GetBaseOffset(), r.GetError())
		}
		if _, err := b.admin.DeleteTopic(rpcCtx(t), &stratav1.DeleteTopicRequest{Name: "churn"}); err != nil {
			t.Fatalf("iteration %d: delete: %v", i, err)
		}
		if r := produce(); codes.Code(r.GetError().GetCode()) != codes.NotFound {
			t.Fatalf("iteration %d: produce after delete: %v, want NotFound", i, r)
		}
	}
}
