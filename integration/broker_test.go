package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/client"
	"github.com/strata-stream/strata/internal/etcdtest"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
)

// runCLI runs the strata binary with args against broker b, feeding stdin.
// It returns stdout, stderr and the exit code.
func runCLI(t *testing.T, b *brokerProc, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, strataBinary(t), args...)
	cmd.Env = append(cmd.Environ(), "STRATA_BROKER="+b.Addr)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("strata %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func mustCLI(t *testing.T, b *brokerProc, stdin []byte, args ...string) string {
	t.Helper()
	out, errOut, code := runCLI(t, b, stdin, args...)
	if code != 0 {
		t.Fatalf("strata %v exited %d: %s%s", args, code, out, errOut)
	}
	return out
}

func newClient(t *testing.T, b *brokerProc) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Brokers: []string{b.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// consumeAll reads topic/partition from offset 0 to its high watermark.
func consumeAll(t *testing.T, c *client.Client, topic string, partition int32) []client.ConsumedRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := readPartition(ctx, c, topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCLIRoundTrip is the README quick start: create, produce lines,
// consume them back byte-identical, through the CLI.
func TestCLIRoundTrip(t *testing.T) {
	b := startBroker(t, "")
	mustCLI(t, b, nil, "topic", "create", "orders", "--partitions", "3", "--config", "retention.ms=86400000")
	out := mustCLI(t, b, nil, "topic", "list")
	if !strings.Contains(out, "orders") {
		t.Fatalf("topic list lacks orders:\n%s", out)
	}
	var lines []string
	for i := range 200 {
		lines = append(lines, fmt.Sprintf("order-%03d\tüñí©ødé %d ✓", i, i*i))
	}
	input := []byte(strings.Join(lines, "\n") + "\n")
	out = mustCLI(t, b, input, "produce", "orders", "--acks", "all", "--partition", "1")
	if strings.TrimSpace(out) != "200 records acknowledged" {
		t.Fatalf("produce printed %q", out)
	}
	out = mustCLI(t, b, nil, "consume", "orders", "--partition", "1", "--max", "200", "--timeout", "10s")
	if out != string(input) {
		t.Fatalf("consumed output differs from input:\n got %q\nwant %q", firstN(out, 300), firstN(string(input), 300))
	}
	// Keyed records go where Kafka's partitioner puts them, and --format
	// shows partition, offset and key.
	mustCLI(t, b, []byte("k1=v1\nk2=v2\nk1=v3\n"), "produce", "orders", "--key-separator", "=", "--acks", "leader")
	out = mustCLI(t, b, nil, "consume", "orders", "--from", "earliest", "--timeout", "2s", "--format", "%p %k %v")
	for _, kv := range [][2]string{{"k1", "v1"}, {"k2", "v2"}, {"k1", "v3"}} {
		want := fmt.Sprintf("%d %s %s\n", client.KeyPartition([]byte(kv[0]), 3), kv[0], kv[1])
		if !strings.Contains(out, want) {
			t.Errorf("consume --format output lacks %q:\n%s", want, out)
		}
	}
	out = mustCLI(t, b, nil, "topic", "describe", "orders")
	for _, want := range []string{"retention.ms=86400000", "partitions: 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	mustCLI(t, b, nil, "topic", "delete", "orders")
	if _, errOut, code := runCLI(t, b, nil, "consume", "orders", "--timeout", "1s"); code == 0 || !strings.Contains(errOut, "NotFound") {
		t.Fatalf("consume of a deleted topic: exit %d, stderr %q", code, errOut)
	}
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// TestClientRoundTrip produces binary keys, values and headers with the
// Go client and reads them back byte-identical at their acknowledged
// offsets.
func TestClientRoundTrip(t *testing.T) {
	b := startBroker(t, "")
	c := newClient(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.CreateTopic(ctx, "bin", 4, nil); err != nil {
		t.Fatal(err)
	}
	p := c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_LEADER, BatchBytes: 16 << 10})
	defer p.Close()
	const n = 5000
	recs := make([]*client.Record, n)
	for i := range recs {
		key := make([]byte, 8)
		val := make([]byte, 1+i%3000)
		_, _ = rand.Read(key)
		_, _ = rand.Read(val)
		recs[i] = &client.Record{Topic: "bin", Key: key, Value: val, Headers: []segment.RecordHeader{{Key: "i", Value: []byte(fmt.Sprint(i))}}}
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	byPart := map[int32]map[int64]*client.Record{}
	for _, r := range recs {
		if r.Partition != client.KeyPartition(r.Key, 4) {
			t.Fatalf("record with key %x went to partition %d, Kafka's partitioner says %d", r.Key, r.Partition, client.KeyPartition(r.Key, 4))
		}
		if byPart[r.Partition] == nil {
			byPart[r.Partition] = map[int64]*client.Record{}
		}
		if _, dup := byPart[r.Partition][r.Offset]; dup {
			t.Fatalf("two records acknowledged at %d/%d", r.Partition, r.Offset)
		}
		byPart[r.Partition][r.Offset] = r
	}
	total := 0
	for part := range int32(4) {
		got := consumeAll(t, c, "bin", part)
		total += len(got)
		if len(got) != len(byPart[part]) {
			t.Fatalf("partition %d: consumed %d records, acknowledged %d", part, len(got), len(byPart[part]))
		}
		for _, g := range got {
			w := byPart[part][g.Offset]
			if w == nil || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || len(g.Headers) != 1 || !bytes.Equal(g.Headers[0].Value, w.Headers[0].Value) {
				t.Fatalf("partition %d offset %d: consumed record differs from the one acknowledged there", part, g.Offset)
			}
			if g.Timestamp.UnixMilli() != w.Timestamp.UnixMilli() {
				t.Fatalf("partition %d offset %d: timestamp %v, produced %v", part, g.Offset, g.Timestamp, w.Timestamp)
			}
		}
	}
	if total != n {
		t.Fatalf("consumed %d records, produced %d", total, n)
	}
}

// TestKillDuringProduce SIGKILLs the broker while producers stream with
// acks=leader, restarts it, and checks that every acknowledged record is
// in the log exactly once, at its acknowledged offset.
func TestKillDuringProduce(t *testing.T) {
	b := startBroker(t, "")
	c := newClient(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const parts = 3
	if _, err := c.CreateTopic(ctx, "crash", parts, nil); err != nil {
		t.Fatal(err)
	}
	type ack struct {
		part   int32
		offset int64
		value  string
	}
	var mu sync.Mutex
	var acked []ack
	produced := 0
	// No retries: a retried batch whose first acknowledgement was lost would
	// legitimately be written twice (there is no idempotent producer yet).
	p := c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_LEADER, Retries: -1, Linger: time.Millisecond, BatchBytes: 8 << 10})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := fmt.Sprintf("record-%07d-%s", i, strings.Repeat("x", i%200))
			err := p.Produce(ctx, &client.Record{Topic: "crash", Value: []byte(v)}, func(r *client.Record, err error) {
				if err == nil {
					mu.Lock()
					acked = append(acked, ack{r.Partition, r.Offset, string(r.Value)})
					mu.Unlock()
				}
			})
			if err != nil {
				return
			}
			produced++
		}
	}()
	// Let production run, then kill the broker mid-stream.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 20000 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Kill()
	close(stop)
	<-done
	flushCtx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	_ = p.Flush(flushCtx) // everything unacknowledged fails: the broker is gone
	fcancel()
	p.Close()
	mu.Lock()
	acks := append([]ack(nil), acked...)
	mu.Unlock()
	if len(acks) < 1000 {
		t.Fatalf("only %d records acknowledged before the kill", len(acks))
	}
	t.Logf("produced %d records, %d acknowledged before SIGKILL", produced, len(acks))

	b.Restart()
	c2 := newClient(t, b)
	seen := map[string]int{}
	logged := map[int32]map[int64]string{}
	for part := range int32(parts) {
		logged[part] = map[int64]string{}
		for _, r := range consumeAll(t, c2, "crash", part) {
			seen[string(r.Value)]++
			logged[part][r.Offset] = string(r.Value)
		}
	}
	for _, a := range acks {
		if got := logged[a.part][a.offset]; got != a.value {
			t.Fatalf("acknowledged %q at %d/%d, the log has %q there", a.value, a.part, a.offset, got)
		}
		if seen[a.value] != 1 {
			t.Fatalf("acknowledged record %q appears %d times", a.value, seen[a.value])
		}
	}
	// The log accepts appends after recovery, continuing its offsets.
	p2 := c2.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_ALL, ManualPartitions: true})
	defer p2.Close()
	r := &client.Record{Topic: "crash", Partition: 0, Value: []byte("after-restart")}
	if err := p2.ProduceSync(ctx, r); err != nil {
		t.Fatal(err)
	}
	if want := int64(len(logged[0])); r.Offset != want {
		t.Fatalf("first record after restart got offset %d, want %d", r.Offset, want)
	}
}

// TestBadRequests sends each kind of bad request to the real broker and
// checks the status code, that the broker keeps serving, and that stored
// data is unchanged.
func TestBadRequests(t *testing.T) {
	b := startBroker(t, "")
	c := newClient(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.CreateTopic(ctx, "good", 2, map[string]string{"max.message.bytes": "2048"}); err != nil {
		t.Fatal(err)
	}
	p := c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_ALL, ManualPartitions: true})
	defer p.Close()
	var want []string
	var recs []*client.Record
	for i := range 50 {
		want = append(want, fmt.Sprintf("value-%d", i))
		recs = append(recs, &client.Record{Topic: "good", Partition: 0, Value: []byte(want[i])})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}

	cc, err := grpc.NewClient(b.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	prod := stratav1.NewProduceServiceClient(cc)
	cons := stratav1.NewConsumeServiceClient(cc)
	admin := stratav1.NewAdminServiceClient(cc)
	good := segment.AppendBatch(nil, segment.NoProducer, []segment.Record{{Value: []byte("ok")}})
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 0xff
	big := segment.AppendBatch(nil, segment.NoProducer, []segment.Record{{Value: make([]byte, 4096)}})

	partErr := func(records []byte, topic string, part int32) codes.Code {
		resp, err := prod.Produce(ctx, &stratav1.ProduceRequest{Acks: stratav1.Acks_ACKS_ALL, Partitions: []*stratav1.PartitionRecords{{Topic: topic, Partition: part, Records: records}}})
		if err != nil {
			return status.Code(err)
		}
		if e := resp.GetPartitions()[0].GetError(); e != nil {
			return codes.Code(e.GetCode())
		}
		return codes.OK
	}
	produceCases := []struct {
		name    string
		records []byte
		topic   string
		part    int32
		want    codes.Code
	}{
		{"unknown topic", good, "nosuch", 0, codes.NotFound},
		{"invalid topic name", good, "bad/name", 0, codes.InvalidArgument},
		{"partition too high", good, "good", 2, codes.NotFound},
		{"negative partition", good, "good", -1, codes.NotFound},
		{"garbage bytes", []byte("this is not a record batch at all, not even close"), "good", 0, codes.InvalidArgument},
		{"CRC mismatch", flipped, "good", 0, codes.InvalidArgument},
		{"truncated batch", good[:len(good)-3], "good", 0, codes.InvalidArgument},
		{"good batch then garbage", append(bytes.Clone(good), 1, 2, 3), "good", 0, codes.InvalidArgument},
		{"above max.message.bytes", big, "good", 0, codes.ResourceExhausted},
		{"empty records", nil, "good", 0, codes.InvalidArgument},
	}
	for _, tc := range produceCases {
		if got := partErr(tc.records, tc.topic, tc.part); got != tc.want {
			t.Errorf("produce %s: code %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := prod.Produce(ctx, &stratav1.ProduceRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("produce with no partitions: %v, want InvalidArgument", err)
	}
	if _, err := prod.Produce(ctx, &stratav1.ProduceRequest{Partitions: []*stratav1.PartitionRecords{{Topic: "good", Records: make([]byte, 70<<20)}}}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("produce of 70 MiB: %v, want ResourceExhausted", err)
	}
	consumeCode := func(req *stratav1.ConsumeRequest) codes.Code {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		s, err := cons.Consume(cctx, req)
		if err != nil {
			return status.Code(err)
		}
		_, err = s.Recv()
		return status.Code(err)
	}
	at := func(o int64) *stratav1.OffsetSpec { return client.AtOffset(o).Spec() }
	consumeCases := []struct {
		name string
		req  *stratav1.ConsumeRequest
		want codes.Code
	}{
		{"offset beyond end", &stratav1.ConsumeRequest{Topic: "good", Start: at(51)}, codes.OutOfRange},
		{"negative offset", &stratav1.ConsumeRequest{Topic: "good", Start: at(-5)}, codes.OutOfRange},
		{"unknown topic", &stratav1.ConsumeRequest{Topic: "nosuch", Start: at(0)}, codes.NotFound},
		{"unknown partition", &stratav1.ConsumeRequest{Topic: "good", Partition: 7, Start: at(0)}, codes.NotFound},
		{"no start", &stratav1.ConsumeRequest{Topic: "good"}, codes.InvalidArgument},
		{"negative max bytes", &stratav1.ConsumeRequest{Topic: "good", Start: at(0), MaxBytes: -1}, codes.InvalidArgument},
	}
	for _, tc := range consumeCases {
		if got := consumeCode(tc.req); got != tc.want {
			t.Errorf("consume %s: code %v, want %v", tc.name, got, tc.want)
		}
	}
	adminCases := []struct {
		name string
		req  *stratav1.CreateTopicRequest
		want codes.Code
	}{
		{"invalid name", &stratav1.CreateTopicRequest{Name: "no spaces", Partitions: 1}, codes.InvalidArgument},
		{"zero partitions", &stratav1.CreateTopicRequest{Name: "t0", Partitions: 0}, codes.InvalidArgument},
		{"too many partitions", &stratav1.CreateTopicRequest{Name: "t1", Partitions: 1 << 30}, codes.InvalidArgument},
		{"unknown config key", &stratav1.CreateTopicRequest{Name: "t2", Partitions: 1, Config: map[string]string{"no.such.key": "1"}}, codes.InvalidArgument},
		{"bad config value", &stratav1.CreateTopicRequest{Name: "t3", Partitions: 1, Config: map[string]string{"retention.ms": "soon"}}, codes.InvalidArgument},
		{"exists", &stratav1.CreateTopicRequest{Name: "good", Partitions: 1}, codes.AlreadyExists},
	}
	for _, tc := range adminCases {
		if _, err := admin.CreateTopic(ctx, tc.req); status.Code(err) != tc.want {
			t.Errorf("create topic %s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// CLI errors are one line on stderr and a non-zero exit.
	for _, args := range [][]string{
		{"topic", "create", "bad name", "--partitions", "1"},
		{"topic", "create", "x", "--partitions", "0"},
		{"topic", "describe", "nosuch"},
		{"consume", "good", "--from", "yesterday"},
		{"produce", "nosuch"},
	} {
		_, errOut, code := runCLI(t, b, []byte("v\n"), args...)
		if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.HasPrefix(errOut, "strata: ") {
			t.Errorf("strata %v: exit %d, stderr %q: want one 'strata: ...' line and a non-zero exit", args, code, errOut)
		}
	}

	// The broker still serves, and the data is exactly what was acknowledged.
	resp, err := http.Get("http://" + b.HTTPAddr + "/healthz")
	if err != nil {
		t.Fatalf("healthz after bad requests: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz after bad requests: %s", resp.Status)
	}
	got := consumeAll(t, c, "good", 0)
	if len(got) != len(want) {
		t.Fatalf("partition 0 holds %d records after bad requests, want %d", len(got), len(want))
	}
	for i, r := range got {
		if r.Offset != int64(i) || string(r.Value) != want[i] {
			t.Fatalf("record %d: offset %d value %q, want %q", i, r.Offset, r.Value, want[i])
		}
	}
	if rest := consumeAll(t, c, "good", 1); len(rest) != 0 {
		t.Fatalf("partition 1 holds %d records; no good batch was sent there", len(rest))
	}
}

// TestServeOperations covers what operators rely on: metrics, health and
// reflection, and a clean SIGTERM that keeps every acknowledged record.
func TestServeOperations(t *testing.T) {
	b := startBroker(t, "", "--sync-policy", "interval")
	c := newClient(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.CreateTopic(ctx, "ops", 1, nil); err != nil {
		t.Fatal(err)
	}
	p := c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_LEADER})
	var recs []*client.Record
	for i := range 1000 {
		recs = append(recs, &client.Record{Topic: "ops", Value: []byte(fmt.Sprint(i))})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	p.Close()
	consumeAll(t, c, "ops", 0)

	resp, err := http.Get("http://" + b.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`strata_log_end_offset{partition="0",topic="ops"} 1000`,
		`strata_produce_requests_total{code="ok"}`,
		`strata_produce_latency_seconds_bucket{acks="leader"`,
		`strata_fetch_latency_seconds_count`,
		`strata_bytes_in_total{topic="ops"}`,
		`strata_bytes_out_total{topic="ops"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The syncer fsyncs the written records within its interval (100 ms).
	waitUntil(t, 5*time.Second, "counting the group-commit fsyncs in strata_log_fsync_seconds_count", func() bool {
		return metricSum(t, b.HTTPAddr, "strata_log_fsync_seconds_count") >= 1
	})

	cc, err := grpc.NewClient(b.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hr, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check: %v %v", hr, err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	rs, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(rctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: ""}}); err != nil {
		t.Fatal(err)
	}
	rr, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	rcancel() // an open reflection stream would hold up graceful shutdown
	var services []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	for _, want := range []string{"strata.v1.AdminService", "strata.v1.ProduceService", "strata.v1.ConsumeService", "strata.v1.MetadataService", "grpc.health.v1.Health"} {
		if !strings.Contains(strings.Join(services, " "), want) {
			t.Errorf("reflection lists %v, lacks %s", services, want)
		}
	}

	// A consumer waiting in a long poll must not hold up shutdown.
	pc := c.ConsumePartition("ops", 0, client.Latest(), client.ConsumerConfig{MaxWait: 10 * time.Second})
	defer pc.Close()
	pollCtx, pollCancel := context.WithCancel(ctx)
	defer pollCancel()
	go func() { _, _ = pc.Poll(pollCtx) }()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if err := b.Stop(); err != nil {
		t.Fatalf("SIGTERM: broker exited with %v; logs:\n%s", err, b.Logs())
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("SIGTERM took %s with an open long poll", d)
	}
	if !strings.Contains(b.Logs(), "stopped cleanly") {
		t.Errorf("no clean-stop log line:\n%s", b.Logs())
	}
	b.Restart()
	got := consumeAll(t, newClient(t, b), "ops", 0)
	if len(got) != 1000 {
		t.Fatalf("after SIGTERM and restart the log holds %d records, want 1000", len(got))
	}
}

// TestExternalEtcd runs the broker against an etcd it does not own
// (--etcd-endpoints) and checks that topics and partition state are in
// that etcd under /strata/<cluster>/, so another broker of the cluster
// would see them.
func TestExternalEtcd(t *testing.T) {
	emb, _ := etcdtest.Start(t) // after the brokers (cleanups run last-in first-out)
	b := startBroker(t, "", "--etcd-endpoints", strings.Join(emb.Endpoints(), ","), "--cluster", "itest")
	mustCLI(t, b, nil, "topic", "create", "ext", "--partitions", "2")
	mustCLI(t, b, []byte("one\ntwo\n"), "produce", "ext", "--partition", "1")
	if out := mustCLI(t, b, nil, "consume", "ext", "--partition", "1", "--max", "2", "--timeout", "10s"); out != "one\ntwo\n" {
		t.Fatalf("consumed %q", out)
	}
	if _, err := os.Stat(filepath.Join(b.DataDir, "etcd")); !os.IsNotExist(err) {
		t.Fatalf("an embedded etcd was started although --etcd-endpoints was given (stat: %v)", err)
	}
	cli, err := emb.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/strata/itest/topics/ext")
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"partitions":2`) {
		t.Fatalf("topic key in etcd: %v %v", resp, err)
	}
	// The broker publishes the high watermark within a second or two.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err = cli.Get(ctx, "/strata/itest/partitions/ext/1/state")
		if err == nil && len(resp.Kvs) == 1 && strings.Contains(string(resp.Kvs[0].Value), `"high_watermark":2`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition state in etcd after 10s: %v %v", resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp, err = cli.Get(ctx, "/strata/itest/brokers/1"); err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("broker registration in etcd: %v %v", resp, err)
	}
}

// TestKillDuringIdempotentProduce SIGKILLs the broker while an idempotent
// producer streams with retries on, restarts it while the producer keeps
// retrying, and checks that every record appears at most once and every
// acknowledged one exactly once at its acknowledged offset: the retries
// of batches written before the kill are recognised, not written again.
func TestKillDuringIdempotentProduce(t *testing.T) {
	b := startBroker(t, "")
	c, err := client.New(client.Config{Brokers: []string{b.Addr}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	const parts = 2
	if _, err := c.CreateTopic(ctx, "idem", parts, nil); err != nil {
		t.Fatal(err)
	}
	type ack struct {
		part   int32
		offset int64
	}
	var mu sync.Mutex
	acked := map[string]ack{}
	failed := 0
	p := c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_LEADER, Idempotent: true, Linger: time.Millisecond,
		BatchBytes: 8 << 10, RetryBackoff: 50 * time.Millisecond, Retries: 100, DeliveryTimeout: 90 * time.Second})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := fmt.Sprintf("idem-%07d", i)
			err := p.Produce(ctx, &client.Record{Topic: "idem", Value: []byte(v)}, func(r *client.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					return
				}
				acked[v] = ack{r.Partition, r.Offset}
			})
			if err != nil {
				return
			}
			if i%500 == 0 {
				time.Sleep(time.Millisecond) // keep the rate moderate
			}
		}
	}()
	waitAcked := func(n int) {
		for deadline := time.Now().Add(30 * time.Second); ; {
			mu.Lock()
			got := len(acked)
			mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				logs := b.Logs()
				t.Fatalf("only %d records acknowledged (%d failed), waiting for %d; broker logs (tail):\n%s", got, failed, n, logs[max(0, len(logs)-3000):])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitAcked(10000)
	b.Kill()
	time.Sleep(500 * time.Millisecond) // the producer's requests fail and are retried
	b.Restart()
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	waitAcked(before + 10000) // production resumed through the retries
	close(stop)
	<-done
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p.Close()
	mu.Lock()
	defer mu.Unlock()
	if failed > 0 {
		t.Fatalf("%d records failed although retries outlast the restart", failed)
	}
	seen := map[string]int{}
	for part := range int32(parts) {
		for _, r := range consumeAll(t, newClient(t, b), "idem", part) {
			v := string(r.Value)
			seen[v]++
			// Offset -1: a retry of a batch written before the leader's
			// memory of the producer (its last 5 batches) begins,
			// acknowledged as written at an offset unknown.
			if a, ok := acked[v]; ok && (a.part != part || a.offset != r.Offset && a.offset != -1) {
				t.Fatalf("%s acknowledged at %d/%d, found at %d/%d", v, a.part, a.offset, part, r.Offset)
			}
		}
	}
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("%s written %d times: a retry was not deduplicated", v, n)
		}
	}
	for v := range acked {
		if seen[v] != 1 {
			t.Fatalf("acknowledged %s is missing", v)
		}
	}
	unknown := 0
	for _, a := range acked {
		if a.offset == -1 {
			unknown++
		}
	}
	t.Logf("%d records acknowledged (%d at an offset unknown), each exactly once, across a SIGKILL and restart", len(acked), unknown)
}
