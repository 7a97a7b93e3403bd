package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/client"
	"github.com/strata-stream/strata/internal/etcdtest"
	"github.com/strata-stream/strata/internal/miniotest"
	"github.com/strata-stream/strata/metadata"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/tiering"
)

// The background workers against a real MinIO (checked with minio-go)
// and a real etcd (read directly for the manifest): retention,
// compaction, the bucket's garbage collection, and SIGKILL in the middle
// of them. Short intervals and a short grace period keep them quick.

const (
	workBucket = "strata-workers"
	workPrefix = "w"
	workGrace  = 4 * time.Second
)

// workersEnv is one broker with a MinIO bucket and an etcd the test
// reads too.
type workersEnv struct {
	b    *brokerProc
	c    *client.Client
	m    *miniotest.Server
	mc   *minio.Client
	meta *metadata.Store
}

func startWorkersEnv(t *testing.T, extra ...string) *workersEnv {
	t.Helper()
	m := miniotest.Start(t)
	m.MakeBucket(t, workBucket)
	emb, cli := etcdtest.Start(t)
	env := []string{"AWS_ACCESS_KEY_ID=" + miniotest.AccessKey, "AWS_SECRET_ACCESS_KEY=" + miniotest.SecretKey, "AWS_REGION=us-east-1"}
	storeURL := fmt.Sprintf("s3://%s/%s?endpoint=%s&region=us-east-1&path-style=true", workBucket, workPrefix, m.Endpoint())
	args := append([]string{"--etcd-endpoints", strings.Join(emb.Endpoints(), ","), "--object-store", storeURL,
		"--retention-check-interval", "200ms", "--compaction-interval", "300ms", "--gc-interval", "500ms",
		"--gc-grace-period", workGrace.String()}, extra...)
	b := startBrokerEnv(t, "", env, args...)
	return &workersEnv{b: b, c: newClient(t, b), m: m, mc: m.Client(t), meta: metadata.New(cli, "strata")}
}

// record is what the test produced at an offset.
type record struct {
	key, value string
	tombstone  bool
}

// produceKV produces recs to topic/0 with acks=leader (nil values for
// tombstones), stamped ts, and returns them by offset.
func (e *workersEnv) produceKV(t *testing.T, topic string, recs []record, ts time.Time) map[int64]record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	p := e.c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_LEADER, ManualPartitions: true})
	defer p.Close()
	out := make([]*client.Record, len(recs))
	for i, r := range recs {
		out[i] = &client.Record{Topic: topic, Key: []byte(r.key), Timestamp: ts}
		if !r.tombstone {
			out[i].Value = []byte(r.value)
		}
	}
	if err := p.ProduceSync(ctx, out...); err != nil {
		t.Fatalf("produce %d records to %s: %v", len(recs), topic, err)
	}
	at := make(map[int64]record, len(recs))
	for i, r := range out {
		at[r.Offset] = recs[i]
	}
	return at
}

func (e *workersEnv) describe(t *testing.T, topic string) *stratav1.PartitionDescription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := e.c.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return d.GetPartitions()[0]
}

// waitUntil polls cond every 100 ms for at most timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still not %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitUploaded waits until every sealed segment of topic/0 is uploaded
// and the uploads reach end.
func (e *workersEnv) waitUploaded(t *testing.T, topic string, end int64) *stratav1.TierStatus {
	t.Helper()
	var ts *stratav1.TierStatus
	waitUntil(t, 60*time.Second, fmt.Sprintf("%s uploaded up to %d", topic, end), func() bool {
		ts = e.describe(t, topic).GetTier()
		return ts.GetRemoteEndOffset() >= end && ts.GetUploadLagMs() == 0
	})
	return ts
}

// manifest reads topic/0's manifest from etcd.
func (e *workersEnv) manifest(t *testing.T, topic string) []metadata.SegmentEntry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	es, err := e.meta.ListSegments(ctx, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// partitionObjects lists the sealed objects (and producer snapshots) of
// topic/0 in the bucket: key (without the store prefix) → size.
func (e *workersEnv) partitionObjects(t *testing.T, topic, topicID string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for k, size := range bucketObjects(t, e.mc, workBucket, workPrefix+"/"+tiering.PartitionPrefix(topic, topicID, 0)) {
		k = strings.TrimPrefix(k, workPrefix+"/")
		if !strings.HasSuffix(k, "manifest.json") {
			out[k] = size
		}
	}
	return out
}

// referenced is the object keys a manifest references.
func referenced(es []metadata.SegmentEntry) map[string]bool {
	out := map[string]bool{}
	for _, e := range es {
		out[e.Key] = true
		if e.Producers {
			out[tiering.ProducerSnapshotKey(e.Key)] = true
		}
	}
	return out
}

// extends reports whether the manifest got is want, perhaps followed by
// entries uploaded after it.
func extends(got, want []metadata.SegmentEntry) bool {
	if len(got) < len(want) || fmt.Sprint(got[:len(want)]) != fmt.Sprint(want) {
		return false
	}
	return len(want) == 0 || len(got) == len(want) || got[len(want)].BaseOffset > want[len(want)-1].LastOffset
}

// waitBucketIsManifest waits until topic/0's objects in the bucket are
// exactly those its manifest references (the garbage and orphans swept)
// and no garbage record is left.
func (e *workersEnv) waitBucketIsManifest(t *testing.T, topic, topicID string) (objects int, bytes int64) {
	t.Helper()
	waitUntil(t, 60*time.Second, "the bucket holding exactly the manifest's objects", func() bool {
		refs, objs := referenced(e.manifest(t, topic)), e.partitionObjects(t, topic, topicID)
		if len(refs) != len(objs) {
			return false
		}
		objects, bytes = 0, 0
		for k, size := range objs {
			if !refs[k] {
				return false
			}
			if strings.HasSuffix(k, ".seg") {
				objects++
				bytes += size
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gs, err := e.meta.ListGarbage(ctx, 0)
		return err == nil && len(gs) == 0
	})
	return objects, bytes
}

// metric returns the sum of the samples of a Prometheus metric whose
// line starts with name (labels included in name if given), -1 when
// there is none.
func (e *workersEnv) metric(t *testing.T, name string) float64 {
	t.Helper()
	return metricSum(t, e.b.HTTPAddr, name)
}

// metricSum is the sum of the samples of the metric name (see
// workersEnv.metric) on the broker whose HTTP listener is httpAddr, -1
// when there is none.
func metricSum(t *testing.T, httpAddr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum, found := 0.0, false
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				sum, found = sum+v, true
			}
		}
	}
	if !found {
		return -1
	}
	return sum
}

// readKV consumes topic/0 from the earliest offset to the high
// watermark: the records by offset, checking offsets only increase.
func readKV(t *testing.T, c *client.Client, topic string) ([]client.ConsumedRecord, map[string]client.ConsumedRecord) {
	t.Helper()
	recs := consumeAll(t, c, topic, 0)
	last := map[string]client.ConsumedRecord{}
	for i, r := range recs {
		if i > 0 && r.Offset <= recs[i-1].Offset {
			t.Fatalf("offset %d after %d: a duplicate or out of order", r.Offset, recs[i-1].Offset)
		}
		last[string(r.Key)] = r
	}
	return recs, last
}

// updates is keys × rounds of records, round-major; in the last round the
// keys with deleted(k) get tombstones.
func kvUpdates(keys, rounds int, deleted func(int) bool) []record {
	var out []record
	for r := range rounds {
		for k := range keys {
			rec := record{key: fmt.Sprintf("key-%05d", k), value: fmt.Sprintf("key-%05d-round-%02d-%s", k, r, strings.Repeat("x", 40))}
			if r == rounds-1 && deleted(k) {
				rec.tombstone, rec.value = true, ""
			}
			out = append(out, rec)
		}
	}
	return out
}

// kvSpread is keys updated 1 to rounds times (key k: 1 + k%rounds), round
// by round, so that every round holds some key's latest record; the keys
// with deleted(k) end with a tombstone.
func kvSpread(keys, rounds int, deleted func(int) bool) []record {
	var out []record
	for r := range rounds {
		for k := range keys {
			n := 1 + k%rounds
			if r >= n {
				continue
			}
			rec := record{key: fmt.Sprintf("key-%05d", k), value: fmt.Sprintf("key-%05d-round-%02d-%s", k, r, strings.Repeat("x", 40))}
			if r == n-1 && deleted(k) {
				rec.tombstone, rec.value = true, ""
			}
			out = append(out, rec)
		}
	}
	return out
}

func fillers(n int) []record {
	out := make([]record, n)
	for i := range out {
		out[i] = record{key: fmt.Sprintf("filler-%05d", i), value: fmt.Sprintf("filler-%05d-%s", i, strings.Repeat("f", 80))}
	}
	return out
}

// latestByKey is each key's last record as produced.
func latestByKey(at map[int64]record) map[string]int64 {
	offs := make([]int64, 0, len(at))
	for o := range at {
		offs = append(offs, o)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	out := map[string]int64{}
	for _, o := range offs {
		out[at[o].key] = o
	}
	return out
}

// TestRetentionWorker: retention removes exactly the expired objects
// (checked in the bucket with minio-go, after the grace period) and no
// others, the log start moves with it (in etcd and for consumers, who get
// OUT_OF_RANGE below it, or move on with a reset policy), by time and by
// size; local retention evicts only uploaded segments, also while the
// bucket is down.
func TestRetentionWorker(t *testing.T) {
	e := startWorkersEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	const topic = "ret"
	d, err := e.c.CreateTopic(ctx, topic, 1, map[string]string{"segment.bytes": "65536", "max.message.bytes": "16384",
		"retention.ms": "-1", "local.retention.bytes": "0"})
	if err != nil {
		t.Fatal(err)
	}
	id := d.GetId()
	old := e.produceKV(t, topic, fillers(6000), time.Now().Add(-2*time.Hour))
	recent := e.produceKV(t, topic, fillers(6000), time.Now())
	end := int64(len(old) + len(recent))
	ts := e.waitUploaded(t, topic, end-2000)
	// Local retention 0: the local log holds only what is not uploaded.
	waitUntil(t, 20*time.Second, "uploaded segments evicted locally", func() bool {
		ts = e.describe(t, topic).GetTier()
		return ts.GetLocalStartOffset() == ts.GetRemoteEndOffset()
	})

	// (The quiet tail is sealed and uploaded about a minute after its
	// first record, perhaps during the test: an upload between the two
	// reads, or later, must not look like retention's doing.)
	var before []metadata.SegmentEntry
	var objsBefore map[string]int64
	waitUntil(t, 20*time.Second, "the bucket holding exactly the manifest's objects before retention", func() bool {
		before, objsBefore = e.manifest(t, topic), e.partitionObjects(t, topic, id)
		refs := referenced(before)
		for k := range objsBefore {
			if !refs[k] {
				return false
			}
		}
		return len(objsBefore) == len(refs)
	})
	horizon := time.Now().Add(-time.Hour).UnixMilli()
	n := 0
	for n < len(before) && before[n].MaxTimestamp < horizon {
		n++
	}
	if n < 5 || len(before)-n < 5 {
		t.Fatalf("%d of %d segments hold only old records; want at least 5 of each", n, len(before))
	}
	wantStart := before[n-1].LastOffset + 1

	t.Run("ByTime", func(t *testing.T) {
		if _, err := e.c.AlterTopicConfig(ctx, topic, map[string]string{"retention.ms": "3600000"}, nil); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 20*time.Second, "the log start at the first segment with a recent record", func() bool {
			r, err := e.c.ListOffsets(ctx, topic, 0, &stratav1.OffsetSpec{Spec: &stratav1.OffsetSpec_Earliest{Earliest: true}})
			return err == nil && r.GetOffset() == wantStart
		})
		if got := e.manifest(t, topic); !extends(got, before[n:]) {
			t.Fatalf("manifest after retention:\n%v\nwant the old one without its first %d entries (and perhaps newer uploads)", got, n)
		}
		st, err := e.meta.GetPartitionState(ctx, topic, 0)
		if err != nil || st.LogStartOffset != wantStart {
			t.Fatalf("state in etcd %+v %v, want log start %d", st, err, wantStart)
		}
		// Within the grace period the expired objects are still there for
		// readers of the old manifest.
		objs := e.partitionObjects(t, topic, id)
		for k := range objsBefore {
			if _, ok := objs[k]; !ok {
				t.Fatalf("object %s deleted right after retention, within the grace period", k)
			}
		}
		pc := e.c.ConsumePartition(topic, 0, client.AtOffset(0), client.ConsumerConfig{MaxWait: 200 * time.Millisecond})
		_, err = pc.Poll(ctx)
		pc.Close()
		if status.Code(err) != codes.OutOfRange || !strings.Contains(err.Error(), fmt.Sprint(wantStart)) {
			t.Fatalf("consume from 0 below the log start: %v, want OUT_OF_RANGE naming the log start %d", err, wantStart)
		}
		pc = e.c.ConsumePartition(topic, 0, client.AtOffset(0), client.ConsumerConfig{MaxWait: 200 * time.Millisecond, Reset: client.ResetEarliest})
		recs, err := pc.Poll(ctx)
		pc.Close()
		if err != nil || len(recs) == 0 || recs[0].Offset != wantStart || pc.Resets() != 1 {
			t.Fatalf("with the reset policy earliest: %d records from %v, %v", len(recs), recs, err)
		}
		// After the grace period, exactly the expired objects are gone.
		e.waitBucketIsManifest(t, topic, id)
		after := e.partitionObjects(t, topic, id)
		for k, size := range objsBefore {
			_, kept := after[k]
			if expired := referenced(before[:n])[k]; expired == kept {
				t.Fatalf("object %s (expired: %v) kept: %v", k, expired, kept)
			}
			if kept && after[k] != size {
				t.Fatalf("object %s changed size", k)
			}
		}
		// (The sweep counts its deletions when its pass ends.)
		waitUntil(t, 10*time.Second, "the garbage deletions counted", func() bool {
			return e.metric(t, `strata_gc_deleted_objects_total{kind="garbage"}`) >= float64(n)
		})
		if r := e.metric(t, `strata_retention_deleted_segments_total{topic="ret"}`); r != float64(n) {
			t.Fatalf("retention deletions counted: %v, want %d", r, n)
		}
		// Everything from the log start on is intact.
		got, _ := readKV(t, e.c, topic)
		if len(got) == 0 || got[0].Offset != wantStart || got[len(got)-1].Offset != end-1 || int64(len(got)) != end-wantStart {
			t.Fatalf("after retention: %d records", len(got))
		}
	})

	t.Run("BySize", func(t *testing.T) {
		es := e.manifest(t, topic)
		ts := e.describe(t, topic).GetTier()
		// Keep about 4 segments: drop the oldest while the log exceeds
		// the limit (the local bytes not uploaded count too).
		limit := ts.GetUploadLagBytes()
		for _, x := range es[len(es)-4:] {
			limit += x.RawSize
		}
		total := ts.GetUploadLagBytes()
		for _, x := range es {
			total += x.RawSize
		}
		k := 0
		for k < len(es) && total > limit {
			total -= es[k].RawSize
			k++
		}
		if _, err := e.c.AlterTopicConfig(ctx, topic, map[string]string{"retention.ms": "-1", "retention.bytes": fmt.Sprint(limit)}, nil); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 20*time.Second, "the log cut to retention.bytes", func() bool {
			return extends(e.manifest(t, topic), es[k:])
		})
		if st, _ := e.meta.GetPartitionState(ctx, topic, 0); st.LogStartOffset != es[k-1].LastOffset+1 {
			t.Fatalf("log start %d after retention by size, want %d", st.LogStartOffset, es[k-1].LastOffset+1)
		}
		e.waitBucketIsManifest(t, topic, id)
	})

	t.Run("LocalRetentionEvictsOnlyUploaded", func(t *testing.T) {
		// (Without retention: with the bucket down the local bytes not
		// uploaded count against retention.bytes, and would expire every
		// uploaded segment.)
		if _, err := e.c.AlterTopicConfig(ctx, topic, nil, []string{"retention.bytes"}); err != nil {
			t.Fatal(err)
		}
		e.m.Stop()
		e.produceKV(t, topic, fillers(3000), time.Now())
		for range 10 {
			ts := e.describe(t, topic).GetTier()
			if ts.GetLocalStartOffset() > ts.GetRemoteEndOffset() {
				t.Fatalf("local log starts at %d, uploads end at %d: a segment not uploaded was evicted", ts.GetLocalStartOffset(), ts.GetRemoteEndOffset())
			}
			time.Sleep(200 * time.Millisecond)
		}
		stalled := e.describe(t, topic).GetTier()
		if stalled.GetUploadLagBytes() < 200000 {
			t.Fatalf("upload lag %d bytes with the bucket down after 3000 records", stalled.GetUploadLagBytes())
		}
		e.m.Restart()
		waitUntil(t, 60*time.Second, "uploaded and evicted after the bucket came back", func() bool {
			ts := e.describe(t, topic).GetTier()
			return ts.GetUploadLagMs() == 0 && ts.GetLocalStartOffset() == ts.GetRemoteEndOffset() && ts.GetLocalStartOffset() > stalled.GetLocalStartOffset()
		})
	})
}

// TestCompactionWorker: 10 000 keys each updated 6 times, 1000 of them
// deleted, first uploaded as a topic with cleanup.policy=delete, then
// compacted: a consumer reading through the run sees a consistent log
// (offsets only increase, every key's last record its latest); afterwards
// consuming from earliest yields exactly the latest record of every key;
// the tombstones go once delete.retention.ms has passed; the bucket's
// bytes and object count shrink (after the grace period, it holds exactly
// the manifest's objects); describe and /metrics show the dirty ratio and
// the last run.
func TestCompactionWorker(t *testing.T) {
	e := startWorkersEnv(t, "--compaction-bytes-per-sec", "2MiB")
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	const topic = "kv"
	d, err := e.c.CreateTopic(ctx, topic, 1, map[string]string{"segment.bytes": "65536", "max.message.bytes": "16384"})
	if err != nil {
		t.Fatal(err)
	}
	id := d.GetId()
	deleted := func(k int) bool { return k%10 == 7 }
	at := e.produceKV(t, topic, kvUpdates(10000, 6, deleted), time.Now())
	for o, r := range e.produceKV(t, topic, fillers(1000), time.Now()) { // so that every key's records are in sealed segments
		at[o] = r
	}
	latest := latestByKey(at)
	end := int64(len(at))
	e.waitUploaded(t, topic, 60000)
	objsBefore, bytesBefore := e.waitBucketIsManifest(t, topic, id)

	// A consumer reads through the compaction run: the run is paced at
	// 2 MiB/s (~10 MB read: the key map, then the rewrite), the consumer
	// at about 32 KiB every 60 ms.
	if _, err := e.c.AlterTopicConfig(ctx, topic, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "3600000"}, nil); err != nil {
		t.Fatal(err)
	}
	pc := e.c.ConsumePartition(topic, 0, client.Earliest(), client.ConsumerConfig{MaxWait: 200 * time.Millisecond, MaxBytes: 32 << 10})
	var through []client.ConsumedRecord
	swappedAt := int64(-1) // the consumer's position when the first swap was seen
	for i := 0; pc.Position() < end; i++ {
		recs, err := pc.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		through = append(through, recs...)
		if swappedAt < 0 && i%5 == 0 {
			if gs, err := e.meta.ListGarbage(ctx, 0); err == nil && len(gs) > 0 {
				swappedAt = pc.Position()
			}
		}
		time.Sleep(60 * time.Millisecond)
	}
	pc.Close()
	if swappedAt < 0 || swappedAt >= end-1000 {
		t.Fatalf("the consumer did not read through the run: it was at %d of %d when the first output was swapped in", swappedAt, end)
	}
	lastSeen := map[string]client.ConsumedRecord{}
	for i, r := range through {
		if i > 0 && r.Offset <= through[i-1].Offset {
			t.Fatalf("reading through the run: offset %d after %d", r.Offset, through[i-1].Offset)
		}
		if want := at[r.Offset]; want.key != string(r.Key) || want.value != string(r.Value) || want.tombstone != (r.Value == nil) {
			t.Fatalf("reading through the run: offset %d holds %q=%q, %q=%q was produced there", r.Offset, r.Key, r.Value, want.key, want.value)
		}
		lastSeen[string(r.Key)] = r
	}
	for k, off := range latest {
		if r, ok := lastSeen[k]; !ok || r.Offset != off {
			t.Fatalf("reading through the run: key %s last seen at %d (seen: %v), its latest is at %d", k, r.Offset, ok, off)
		}
	}
	var status *stratav1.CompactionStatus
	waitUntil(t, 60*time.Second, "compacted", func() bool {
		status = e.describe(t, topic).GetCompaction()
		return status.GetLastRunMs() > 0 && status.GetCleanedEndOffset() >= 60000
	})
	t.Logf("read %d records through the run (at offset %d at the first swap); the run: %+v", len(through), swappedAt, status)
	// Paced by --compaction-bytes-per-sec: the rewrite alone read
	// bytes_in at 2 MiB/s (unpaced, the run takes a tenth of that).
	if floor := status.GetLastRunBytesIn() * 1000 / (2 << 20) * 9 / 10; status.GetLastRunDurationMs() < floor {
		t.Fatalf("the run took %d ms for %d bytes: not paced at 2 MiB/s (at least %d ms)", status.GetLastRunDurationMs(), status.GetLastRunBytesIn(), floor)
	}

	t.Run("LatestValueOfEveryKey", func(t *testing.T) {
		recs, last := readKV(t, e.c, topic)
		if len(recs) != len(latest) {
			t.Fatalf("%d records from earliest, want %d: one per key", len(recs), len(latest))
		}
		for k, off := range latest {
			r, ok := last[k]
			if !ok || r.Offset != off || string(r.Value) != at[off].value || (r.Value == nil) != at[off].tombstone {
				t.Fatalf("key %s: offset %d value %q, want its latest at %d: %q", k, r.Offset, r.Value, off, at[off].value)
			}
		}
		if st := e.describe(t, topic).GetCompaction(); st.GetDirtyRatio() > 0.2 || st.GetLastRunRecordsRemoved() < 40000 {
			t.Fatalf("compaction status %+v", st)
		}
		out := mustCLI(t, e.b, nil, "topic", "describe", topic)
		if !strings.Contains(out, "compaction:") || !strings.Contains(out, "DIRTY-RATIO") || !strings.Contains(out, "LAST-RUN") {
			t.Fatalf("topic describe shows no compaction status:\n%s", out)
		}
		if v := e.metric(t, `strata_compaction_last_run_timestamp_seconds{partition="0",topic="kv"}`); v < float64(time.Now().Add(-time.Minute).Unix()) {
			t.Fatalf("last run metric %v", v)
		}
		if v := e.metric(t, `strata_compaction_dirty_ratio{partition="0",topic="kv"}`); v < 0 || v > 0.2 {
			t.Fatalf("dirty ratio metric %v", v)
		}
	})

	t.Run("TombstonesGoAfterDeleteRetention", func(t *testing.T) {
		if _, err := e.c.AlterTopicConfig(ctx, topic, map[string]string{"delete.retention.ms": "2000"}, nil); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 60*time.Second, "tombstones dropped", func() bool {
			return e.describe(t, topic).GetCompaction().GetLastRunTombstonesRemoved() > 0
		})
		recs, last := readKV(t, e.c, topic)
		live := 0
		for k, off := range latest {
			r, ok := last[k]
			switch {
			case at[off].tombstone && ok:
				t.Fatalf("deleted key %s still consumed at %d after delete.retention.ms", k, r.Offset)
			case !at[off].tombstone && (!ok || r.Offset != off || string(r.Value) != at[off].value):
				t.Fatalf("live key %s: offset %d value %q, want %d %q", k, r.Offset, r.Value, off, at[off].value)
			case !at[off].tombstone:
				live++
			}
		}
		if len(recs) != live || live != 9000+1000 {
			t.Fatalf("%d records, %d live keys", len(recs), live)
		}
	})

	t.Run("BucketShrinks", func(t *testing.T) {
		objs, bytes := e.waitBucketIsManifest(t, topic, id)
		t.Logf("bucket objects of %s/0: %d objects, %d bytes before compaction; %d objects, %d bytes after", topic, objsBefore, bytesBefore, objs, bytes)
		if objs >= objsBefore/4 || bytes >= bytesBefore/3 {
			t.Fatalf("compaction did not shrink the bucket: %d objects, %d bytes → %d objects, %d bytes", objsBefore, bytesBefore, objs, bytes)
		}
	})
}

// TestWorkersSurviveSIGKILL: the broker is killed in the middle of a
// compaction run (after its first swap, before its end) and right after a
// retention commit; after a restart each log is consistent (every record
// at its offset, every key's last record its latest, nothing below the
// log start in the manifest), the interrupted work completes, and the
// orphans (the killed run's, and one planted as a crash between a PUT and
// its commit leaves it) and the garbage are collected.
func TestWorkersSurviveSIGKILL(t *testing.T) {
	e := startWorkersEnv(t, "--compaction-bytes-per-sec", "256KiB")
	top := t
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	d, err := e.c.CreateTopic(ctx, "ck", 1, map[string]string{"segment.bytes": "65536", "max.message.bytes": "16384"})
	if err != nil {
		t.Fatal(err)
	}
	ckID := d.GetId()
	d, err = e.c.CreateTopic(ctx, "rk", 1, map[string]string{"segment.bytes": "65536", "max.message.bytes": "16384", "retention.ms": "-1"})
	if err != nil {
		t.Fatal(err)
	}
	rkID := d.GetId()
	ck := e.produceKV(t, "ck", kvSpread(3000, 6, func(k int) bool { return k%5 == 0 }), time.Now())
	for o, r := range e.produceKV(t, "ck", fillers(1000), time.Now()) {
		ck[o] = r
	}
	rk := e.produceKV(t, "rk", fillers(4000), time.Now().Add(-2*time.Hour))
	for o, r := range e.produceKV(t, "rk", fillers(4000), time.Now()) {
		rk[o] = r
	}
	e.waitUploaded(t, "ck", 10500)
	e.waitUploaded(t, "rk", 6000)

	// A crash between a PUT and its commit leaves an object no manifest
	// entry names: plant one (a copy of a real segment under the key a
	// compaction output would have).
	src := e.manifest(t, "ck")[0]
	orphan := tiering.CompactedObjectKey("ck", ckID, 0, src.BaseOffset, src.LastOffset, 1, 0xdeadbeef)
	if _, err := e.mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: workBucket, Object: workPrefix + "/" + orphan},
		minio.CopySrcOptions{Bucket: workBucket, Object: workPrefix + "/" + src.Key}); err != nil {
		t.Fatal(err)
	}

	t.Run("KillDuringCompaction", func(t *testing.T) {
		if _, err := e.c.AlterTopicConfig(ctx, "ck", map[string]string{"cleanup.policy": "compact"}, nil); err != nil {
			t.Fatal(err)
		}
		// Kill once the run has swapped in its first output: it is paced
		// at 256 KiB/s over ~0.9 MB read twice, and every input holds some
		// key's latest record, so it is far from done.
		waitUntil(t, 60*time.Second, "a first compaction swap", func() bool {
			gs, err := e.meta.ListGarbage(ctx, 0)
			return err == nil && len(gs) > 0
		})
		e.b.Kill()
		if _, done, _ := e.meta.GetCompactionStatus(ctx, "ck", 0); done {
			t.Fatal("the compaction run had finished before the kill")
		}
		e.b.Restart()
		e.c = newClient(top, e.b)
		checkKV(t, e.c, "ck", ck)
		waitUntil(t, 60*time.Second, "the compaction completed after the restart", func() bool {
			st, ok, err := e.meta.GetCompactionStatus(ctx, "ck", 0)
			return err == nil && ok && st.CleanedEnd >= 10500
		})
		checkKV(t, e.c, "ck", ck)
		e.waitBucketIsManifest(t, "ck", ckID)
		if _, ok := e.partitionObjects(t, "ck", ckID)[orphan]; ok {
			t.Fatalf("the planted orphan %s was not collected", orphan)
		}
	})

	t.Run("KillDuringRetention", func(t *testing.T) {
		first := e.manifest(t, "rk")[0]
		if _, err := e.c.AlterTopicConfig(ctx, "rk", map[string]string{"retention.ms": "3600000"}, nil); err != nil {
			t.Fatal(err)
		}
		// Kill right after the commit: the objects are garbage (not yet
		// deleted) and the local files may still be there.
		waitUntil(t, 30*time.Second, "the retention commit", func() bool {
			es, err := e.meta.ListSegments(ctx, "rk", 0)
			return err == nil && len(es) > 0 && es[0].BaseOffset != first.BaseOffset
		})
		e.b.Kill()
		e.b.Restart()
		e.c = newClient(top, e.b)
		st, err := e.meta.GetPartitionState(ctx, "rk", 0)
		if err != nil {
			t.Fatal(err)
		}
		es := e.manifest(t, "rk")
		if es[0].BaseOffset < st.LogStartOffset {
			t.Fatalf("manifest entry at %d below the log start %d", es[0].BaseOffset, st.LogStartOffset)
		}
		waitUntil(t, 30*time.Second, "every old segment expired", func() bool {
			es := e.manifest(t, "rk")
			return es[0].MaxTimestamp >= time.Now().Add(-time.Hour).UnixMilli()
		})
		recs := consumeAll(t, e.c, "rk", 0)
		start := e.manifest(t, "rk")[0].BaseOffset
		if len(recs) == 0 || recs[0].Offset != start {
			t.Fatalf("consumed from %v, want the log start %d", recs[:min(1, len(recs))], start)
		}
		for i, r := range recs {
			if r.Offset != start+int64(i) || rk[r.Offset].value != string(r.Value) {
				t.Fatalf("after retention and a kill: record %d at offset %d is %q", i, r.Offset, r.Value)
			}
		}
		if last := recs[len(recs)-1].Offset; last != int64(len(rk)-1) {
			t.Fatalf("the log ends at %d, want %d", last, len(rk)-1)
		}
		e.waitBucketIsManifest(t, "rk", rkID)
	})
}

// checkKV consumes topic/0 from earliest and checks that every record is
// what was produced at its offset and every key's last record is its
// latest (or, for a deleted key, the tombstone or nothing).
func checkKV(t *testing.T, c *client.Client, topic string, at map[int64]record) {
	t.Helper()
	recs, last := readKV(t, c, topic)
	for _, r := range recs {
		if want := at[r.Offset]; want.key != string(r.Key) || want.value != string(r.Value) || want.tombstone != (r.Value == nil) {
			t.Fatalf("offset %d holds %q=%q, %q=%q was produced there", r.Offset, r.Key, r.Value, want.key, want.value)
		}
	}
	for k, off := range latestByKey(at) {
		r, ok := last[k]
		if ok && r.Offset != off || !ok && !at[off].tombstone {
			t.Fatalf("key %s: last consumed at %d (present: %v), its latest is at %d", k, r.Offset, ok, off)
		}
	}
}
