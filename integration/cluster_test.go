package integration

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/client"
	"github.com/strata-stream/strata/internal/etcdtest"
	"github.com/strata-stream/strata/internal/miniotest"
	"github.com/strata-stream/strata/metadata"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
)

// leaders returns partition → leader broker id of topic (-1: none).
func leaders(t *testing.T, c *client.Client, topic string) map[int32]int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := c.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int32{}
	for _, p := range md.GetTopics()[0].GetPartitions() {
		out[p.GetPartition()] = p.GetLeaderId()
	}
	return out
}

// TestClusterFailover runs three broker processes on one etcd and one
// MinIO: the controller spreads a topic's partitions over them; when the
// leader of a partition is SIGKILLed, another broker takes it over and
// accepts writes within the session TTL + 2 s; the killed broker rejoins
// as an ordinary member.
func TestClusterFailover(t *testing.T) {
	m := miniotest.Start(t)
	m.MakeBucket(t, "cluster")
	emb, _ := etcdtest.Start(t) // after the brokers (cleanups run last-in first-out)
	const ttl = 6 * time.Second
	env := []string{"AWS_ACCESS_KEY_ID=" + miniotest.AccessKey, "AWS_SECRET_ACCESS_KEY=" + miniotest.SecretKey}
	storeURL := fmt.Sprintf("s3://cluster/c1?endpoint=%s&region=us-east-1&path-style=true", m.Endpoint())
	var brokers []*brokerProc
	var seeds []string
	for id := 1; id <= 3; id++ {
		b := startBrokerEnv(t, "", env, "--broker-id", fmt.Sprint(id), "--etcd-endpoints", strings.Join(emb.Endpoints(), ","),
			"--object-store", storeURL, "--session-ttl", ttl.String(), "--reconcile-interval", "500ms")
		brokers = append(brokers, b)
		seeds = append(seeds, b.Addr)
	}
	c, err := client.New(client.Config{Brokers: seeds})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if _, err := c.CreateTopic(ctx, "fo", 6, nil); err != nil {
		t.Fatal(err)
	}
	// Every partition gets a leader, two per broker.
	deadline := time.Now().Add(20 * time.Second)
	for {
		per := map[int32]int{}
		ls := leaders(t, c, "fo")
		for _, l := range ls {
			per[l]++
		}
		if per[1] == 2 && per[2] == 2 && per[3] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions not spread over the 3 brokers after 20s: %v", ls)
		}
		time.Sleep(200 * time.Millisecond)
	}
	p := c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_LEADER, ManualPartitions: true})
	for part := range int32(6) {
		if err := p.ProduceSync(ctx, &client.Record{Topic: "fo", Partition: part, Value: []byte("before")}); err != nil {
			t.Fatalf("produce to partition %d: %v", part, err)
		}
	}
	p.Close()

	victim := leaders(t, c, "fo")[0]
	brokers[victim-1].Kill()
	killed := time.Now()
	// Write to partition 0 until a new leader takes it (each try bounded).
	var took time.Duration
	for attempt := 0; ; attempt++ {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		p := c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_LEADER, ManualPartitions: true, RetryBackoff: 50 * time.Millisecond, DeliveryTimeout: time.Second})
		err := p.ProduceSync(pctx, &client.Record{Topic: "fo", Partition: 0, Value: []byte("after")})
		p.Close()
		pcancel()
		if err == nil {
			took = time.Since(killed)
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("no leader accepted writes to partition 0 within 30s of SIGKILL (last error: %v)", err)
		}
	}
	t.Logf("failover: partition 0 accepted writes %s after its leader (broker %d) was SIGKILLed (session TTL %s)", took.Round(time.Millisecond), victim, ttl)
	if took > ttl+2*time.Second {
		t.Errorf("failover took %s, want at most TTL + 2s = %s", took, ttl+2*time.Second)
	}
	// Every partition of the dead broker moves to a live one.
	deadline = time.Now().Add(10 * time.Second)
	for ok := false; !ok; {
		ls := leaders(t, c, "fo")
		ok = true
		for _, l := range ls {
			if l == victim || l < 0 {
				ok = false
			}
		}
		if !ok && time.Now().After(deadline) {
			t.Fatalf("10s after the failover, partitions still without a live leader: %v (dead broker %d)", ls, victim)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The killed broker rejoins as an ordinary member: it leads nothing
	// the others took over, and the cluster status lists it.
	brokers[victim-1].Restart()
	out := mustCLI(t, brokers[victim-1], nil, "cluster", "status")
	if !strings.Contains(out, fmt.Sprintf("%d  ", victim)) || !strings.Contains(out, "controller:") {
		t.Fatalf("cluster status after rejoin:\n%s", out)
	}
	if got := leaders(t, c, "fo")[0]; got == victim {
		t.Fatalf("partition 0 moved back to the restarted broker %d", victim)
	}
}

// TestFrozenLeaderIsFenced freezes a partition's leader with SIGSTOP past
// its session TTL: another broker takes the partition over; when the old
// leader resumes (SIGCONT) it acknowledges nothing for the partition and
// commits nothing to etcd, then rejoins as an ordinary member.
func TestFrozenLeaderIsFenced(t *testing.T) {
	emb, _ := etcdtest.Start(t)
	m := miniotest.Start(t)
	m.MakeBucket(t, "fenced")
	env := []string{"AWS_ACCESS_KEY_ID=" + miniotest.AccessKey, "AWS_SECRET_ACCESS_KEY=" + miniotest.SecretKey}
	storeURL := fmt.Sprintf("s3://fenced/c1?endpoint=%s&region=us-east-1&path-style=true", m.Endpoint())
	const ttl = 3 * time.Second
	var brokers []*brokerProc
	for id := 1; id <= 2; id++ {
		brokers = append(brokers, startBrokerEnv(t, "", env, "--broker-id", fmt.Sprint(id), "--etcd-endpoints", strings.Join(emb.Endpoints(), ","),
			"--session-ttl", ttl.String(), "--reconcile-interval", "300ms", "--object-store", storeURL, "--wal", "on"))
	}
	c, err := client.New(client.Config{Brokers: []string{brokers[0].Addr, brokers[1].Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if _, err := c.CreateTopic(ctx, "fz", 2, nil); err != nil {
		t.Fatal(err)
	}
	var old int32
	for deadline := time.Now().Add(20 * time.Second); ; {
		if old = leaders(t, c, "fz")[0]; old > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("partition 0 has no leader")
		}
		time.Sleep(100 * time.Millisecond)
	}
	frozen, other := brokers[old-1], brokers[2-old]
	// A connection to the old leader, open before it freezes, so requests
	// reach it the moment it resumes.
	cc, err := grpc.NewClient(frozen.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := stratav1.NewMetadataServiceClient(cc).GetMetadata(ctx, &stratav1.GetMetadataRequest{}); err != nil {
		t.Fatal(err)
	}
	frozenAt := time.Now().UnixNano()
	frozen.Freeze()
	defer frozen.Thaw()
	oc, err := client.New(client.Config{Brokers: []string{other.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()
	for deadline := time.Now().Add(ttl + 10*time.Second); leaders(t, oc, "fz")[0] == old || leaders(t, oc, "fz")[0] < 0; {
		if time.Now().After(deadline) {
			t.Fatalf("partition 0 still led by frozen broker %d", old)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p := oc.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_ALL, ManualPartitions: true})
	for i := range 5 {
		if err := p.ProduceSync(ctx, &client.Record{Topic: "fz", Partition: 0, Value: []byte(fmt.Sprint("new-", i))}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()

	// Resume the old leader and at once ask it, directly, to take writes
	// for the partition it led: it must not acknowledge any.
	batch := segment.AppendBatch(nil, segment.NoProducer, []segment.Record{{Value: []byte("stale")}})
	// The requests are sent while it is frozen and arrive as it resumes.
	results := make(chan string, 40)
	for i := range 20 {
		go func() {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			defer rcancel()
			resp, err := stratav1.NewProduceServiceClient(cc).Produce(rctx, &stratav1.ProduceRequest{Acks: stratav1.Acks_ACKS_ALL,
				Partitions: []*stratav1.PartitionRecords{{Topic: "fz", Partition: 0, Records: bytes.Clone(batch)}}})
			if err == nil && resp.GetPartitions()[0].GetError() == nil {
				results <- fmt.Sprintf("request %d sent while frozen was acknowledged at offset %d", i, resp.GetPartitions()[0].GetBaseOffset())
				return
			}
			results <- ""
		}()
	}
	time.Sleep(200 * time.Millisecond)
	frozen.Thaw()
	for range 20 {
		if r := <-results; r != "" {
			t.Fatal(r)
		}
	}
	for i := range 20 {
		for _, acks := range []stratav1.Acks{stratav1.Acks_ACKS_ALL, stratav1.Acks_ACKS_LEADER} {
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := stratav1.NewProduceServiceClient(cc).Produce(rctx, &stratav1.ProduceRequest{Acks: acks,
				Partitions: []*stratav1.PartitionRecords{{Topic: "fz", Partition: 0, Records: bytes.Clone(batch)}}})
			rcancel()
			if err == nil && resp.GetPartitions()[0].GetError() == nil {
				t.Fatalf("try %d: the resumed old leader acknowledged a write (acks %v) at offset %d", i, acks, resp.GetPartitions()[0].GetBaseOffset())
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Nothing it wrote is in the partition: the new leader has exactly the
	// five records it acknowledged.
	time.Sleep(2 * time.Second)
	got := consumeAll(t, oc, "fz", 0)
	for _, r := range got {
		if string(r.Value) == "stale" {
			t.Fatalf("a write to the old leader reached the partition at offset %d", r.Offset)
		}
	}
	if n := len(got); n != 5 {
		t.Fatalf("partition 0 holds %d records, want the 5 the new leader acknowledged", n)
	}
	// It committed no WAL object for the partition after it froze (the
	// commit is fenced by the leadership it lost).
	cli, err := emb.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ws, err := metadata.New(cli, "strata").ListWAL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		for _, e := range w.Entries {
			if w.BrokerID == old && w.Seq >= frozenAt && e.Topic == "fz" && e.Partition == 0 {
				t.Fatalf("the fenced broker %d committed WAL object %s for fz/0 (offsets [%d, %d], epoch %d) after it froze", old, w.Key, e.BaseOffset, e.LastOffset, e.Epoch)
			}
		}
	}
	// The old leader rejoins as an ordinary member.
	frozen.waitReady(30 * time.Second)
	if l := leaders(t, oc, "fz")[0]; l == old {
		t.Fatalf("partition 0 went back to the fenced broker %d", old)
	}
}

// TestTieredReadsFromAnyBroker: a broker that does not lead a partition
// serves its uploaded records from the bucket (the manifest is in etcd),
// byte-identical, then ends the stream with the not-the-leader status
// that sends the client to the leader for the rest - also while the
// leader is down and nobody has taken over yet.
func TestTieredReadsFromAnyBroker(t *testing.T) {
	cc := startChaosCluster(t, "anyread", 6*time.Second, []string{"", "", ""})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if _, err := cc.c.CreateTopic(ctx, "anyread", 1, map[string]string{"segment.bytes": "65536", "max.message.bytes": "16384"}); err != nil {
		t.Fatal(err)
	}
	var leader int32
	for deadline := time.Now().Add(20 * time.Second); leader <= 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no leader for anyread/0 after 20s")
		}
		leader = leaders(t, cc.c, "anyread")[0]
	}
	const n = 3000
	value := func(i int) string { return fmt.Sprintf("r-%05d-%s", i, strings.Repeat("x", 100)) }
	p := cc.c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_ALL, ManualPartitions: true})
	recs := make([]*client.Record, n)
	for i := range recs {
		recs[i] = &client.Record{Topic: "anyread", Partition: 0, Value: []byte(value(i))}
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	p.Close()

	// readFrom consumes anyread/0 from the earliest offset at addr until
	// the stream ends, and returns the values and how it ended.
	readFrom := func(addr string) ([]string, error) {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
		defer rcancel()
		stream, err := stratav1.NewConsumeServiceClient(conn).Consume(rctx, &stratav1.ConsumeRequest{Topic: "anyread",
			Start: &stratav1.OffsetSpec{Spec: &stratav1.OffsetSpec_Earliest{Earliest: true}}, MaxBytes: 65536})
		if err != nil {
			return nil, err
		}
		var vals []string
		for range 10000 {
			resp, err := stream.Recv()
			if err != nil {
				return vals, err
			}
			err = segment.ForEachBatch(resp.GetRecords(), func(_ segment.BatchHeader, b []byte) error {
				return segment.BatchRecords(b, func(r segment.Record) error {
					if r.Offset >= int64(len(vals)) {
						if r.Offset != int64(len(vals)) {
							return fmt.Errorf("offset %d after %d records", r.Offset, len(vals))
						}
						vals = append(vals, string(r.Value))
					}
					return nil
				})
			})
			if err != nil {
				t.Fatalf("from %s: %v", addr, err)
			}
		}
		t.Fatalf("from %s: the stream did not end", addr)
		return nil, nil
	}
	check := func(what, addr string, minRecords int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			vals, err := readFrom(addr)
			if status.Code(err) == codes.Unavailable && time.Now().Before(deadline) {
				time.Sleep(300 * time.Millisecond) // the broker has not taken up the new topic yet
				continue
			}
			if code := status.Code(err); code != codes.FailedPrecondition {
				t.Fatalf("%s: stream from %s ended with %v, want FAILED_PRECONDITION (not the leader)", what, addr, err)
			}
			for i, v := range vals {
				if v != value(i) {
					t.Fatalf("%s: offset %d from %s is %q, want %q", what, i, addr, firstN(v, 12), firstN(value(i), 12))
				}
			}
			if len(vals) >= minRecords {
				t.Logf("%s: %d records read from non-leader %s, then: %v", what, len(vals), addr, err)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: only %d records from %s after 30s, want at least %d uploaded", what, len(vals), addr, minRecords)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	var others []int32
	for id := int32(1); id <= 3; id++ {
		if id != leader {
			others = append(others, id)
		}
	}
	for _, id := range others {
		check(fmt.Sprintf("broker %d", id), cc.brokers[id-1].Addr, 2000)
	}
	cc.kill(leader)
	check(fmt.Sprintf("leader %d down, broker %d", leader, others[0]), cc.brokers[others[0]-1].Addr, 2000)
}
