package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/client"
	"github.com/strata-stream/strata/internal/etcdtest"
	"github.com/strata-stream/strata/internal/miniotest"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering"
	"github.com/strata-stream/strata/tiering/objstore"
)

const (
	tierBucket = "strata-it"
	tierPrefix = "cluster-1"
	tierTopic  = "tiered"
)

// tierValue is the value of the record produced i-th: distinct, and big
// enough that segments roll often with segment.bytes=65536.
func tierValue(i int) string {
	return fmt.Sprintf("v-%07d-%s", i, strings.Repeat("abcdefghij", 10))
}

// produceTier produces values [from, to) to partition 0 with acks=leader
// and returns value → acknowledged offset.
func produceTier(t *testing.T, c *client.Client, from, to int) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	p := c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_LEADER, ManualPartitions: true})
	defer p.Close()
	recs := make([]*client.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, &client.Record{Topic: tierTopic, Partition: 0, Value: []byte(tierValue(i))})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatalf("produce [%d, %d): %v", from, to, err)
	}
	out := make(map[string]int64, len(recs))
	for _, r := range recs {
		out[string(r.Value)] = r.Offset
	}
	return out
}

// tierStatus returns partition 0's tier status.
func tierStatus(t *testing.T, c *client.Client) *stratav1.TierStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := c.DescribeTopic(ctx, tierTopic)
	if err != nil {
		t.Fatal(err)
	}
	ts := d.GetPartitions()[0].GetTier()
	if ts == nil {
		t.Fatal("no tier status: tiering is off or the broker does not lead the partition")
	}
	return ts
}

// waitTier waits (at most 60 s) until cond holds for the tier status.
func waitTier(t *testing.T, c *client.Client, what string, cond func(*stratav1.TierStatus) bool) *stratav1.TierStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ts := tierStatus(t, c)
		if cond(ts) {
			return ts
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s, still not %s: %+v", what, ts)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkAll consumes partition 0 from offset 0 and checks that every
// acknowledged value is at its offset, exactly once.
func checkAll(t *testing.T, c *client.Client, acked map[string]int64) {
	t.Helper()
	// acks=leader records become readable once the WAL commits them.
	end := int64(0)
	for _, off := range acked {
		end = max(end, off+1)
	}
	waitHighWatermark(t, c, tierTopic, 0, end)
	got := consumeAll(t, c, tierTopic, 0)
	at := make(map[int64]string, len(got))
	seen := map[string]int{}
	for i, r := range got {
		if r.Offset != int64(i) {
			t.Fatalf("record %d has offset %d: the log has a gap or is out of order", i, r.Offset)
		}
		at[r.Offset] = string(r.Value)
		seen[string(r.Value)]++
	}
	for v, off := range acked {
		if at[off] != v {
			t.Fatalf("offset %d: want %q, consumed %q", off, v[:10], firstN(at[off], 10))
		}
		if seen[v] != 1 {
			t.Fatalf("%q consumed %d times", v[:10], seen[v])
		}
	}
}

// bucketObjects lists the objects of bucket under prefix: key → size.
func bucketObjects(t *testing.T, mc *minio.Client, bucket, prefix string) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]int64{}
	for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		out[o.Key] = o.Size
	}
	return out
}

// TestTieredStorage runs the real broker against a real MinIO and an etcd
// it does not own, and walks through the tiered-storage guarantees:
// segments sealed, uploaded (checked with minio-go) and evicted locally,
// consumption from offset 0 byte-identical; an object-store outage that
// stalls uploads but not production; a broker whose data directory is
// deleted still serving every uploaded record; the bucket alone replaying
// the topic without etcd; and a damaged object never served.
func TestTieredStorage(t *testing.T) {
	m := miniotest.Start(t)
	m.MakeBucket(t, tierBucket)
	mc := m.Client(t)
	emb, _ := etcdtest.Start(t) // after the brokers (cleanups run last-in first-out)
	env := []string{"AWS_ACCESS_KEY_ID=" + miniotest.AccessKey, "AWS_SECRET_ACCESS_KEY=" + miniotest.SecretKey, "AWS_REGION=us-east-1"}
	storeURL := fmt.Sprintf("s3://%s/%s?endpoint=%s&region=us-east-1&path-style=true", tierBucket, tierPrefix, m.Endpoint())
	dataDir := t.TempDir()
	top := t // clients that outlive a subtest belong to the test
	b := startBrokerEnv(t, dataDir, env, "--etcd-endpoints", strings.Join(emb.Endpoints(), ","), "--object-store", storeURL)
	c := newClient(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Second)
	defer cancel()
	if _, err := c.CreateTopic(ctx, tierTopic, 1, map[string]string{
		"segment.bytes": "65536", "max.message.bytes": "16384", "local.retention.bytes": "131072",
	}); err != nil {
		t.Fatal(err)
	}
	desc, err := c.DescribeTopic(ctx, tierTopic)
	if err != nil {
		t.Fatal(err)
	}
	topicID := desc.GetId()
	partPrefix := tierPrefix + "/" + tiering.PartitionPrefix(tierTopic, topicID, 0)

	acked := produceTier(t, c, 0, 20000)
	t.Run("UploadEvictAndReadBack", func(t *testing.T) {
		ts := waitTier(t, c, "uploaded and evicted", func(ts *stratav1.TierStatus) bool {
			return ts.GetRemoteEndOffset() >= 18000 && ts.GetLocalStartOffset() > 0 && ts.GetLocalBytes() <= 131072+65536
		})
		objs := bucketObjects(t, mc, tierBucket, partPrefix)
		var segs int64
		for k := range objs {
			if strings.HasSuffix(k, ".seg") {
				segs++
			}
		}
		if segs != ts.GetRemoteObjects() || segs < 10 {
			t.Fatalf("bucket holds %d segment objects, the broker reports %d", segs, ts.GetRemoteObjects())
		}
		if _, ok := objs[partPrefix+"manifest.json"]; !ok {
			t.Fatalf("no manifest snapshot among %d objects", len(objs))
		}
		if ts.GetRemoteRawBytes() <= ts.GetRemoteBytes() {
			t.Fatalf("objects are not compressed: %d raw bytes in %d", ts.GetRemoteRawBytes(), ts.GetRemoteBytes())
		}
		if ts.GetRemoteStartOffset() != 0 {
			t.Fatalf("remote starts at %d", ts.GetRemoteStartOffset())
		}
		checkAll(t, c, acked)
	})

	t.Run("ObjectStoreOutage", func(t *testing.T) {
		before := tierStatus(t, c).GetRemoteEndOffset()
		m.Stop()
		more := produceTier(t, c, 20000, 35000) // production continues
		for v, o := range more {
			acked[v] = o
		}
		time.Sleep(2 * time.Second)
		stalled := tierStatus(t, c)
		if stalled.GetRemoteEndOffset() != before {
			t.Fatalf("uploads advanced from %d to %d with MinIO down", before, stalled.GetRemoteEndOffset())
		}
		if stalled.GetUploadLagBytes() < 200000 {
			t.Fatalf("upload lag %d bytes with MinIO down after 15000 records", stalled.GetUploadLagBytes())
		}
		m.Restart()
		waitTier(t, c, "caught up after MinIO returned", func(ts *stratav1.TierStatus) bool {
			return ts.GetRemoteEndOffset() >= 33000 && ts.GetUploadLagBytes() <= 2*65536
		})
		checkAll(t, c, acked)
	})

	t.Run("DataDirectoryLost", func(t *testing.T) {
		ts := waitTier(t, c, "all sealed segments uploaded", func(ts *stratav1.TierStatus) bool {
			return ts.GetUploadLagMs() == 0
		})
		uploadedEnd := ts.GetRemoteEndOffset()
		b.Kill()
		if err := os.RemoveAll(dataDir); err != nil {
			t.Fatal(err)
		}
		b.Restart()
		c2 := newClient(top, b)
		got := consumeAll(t, c2, tierTopic, 0)
		at := map[int64]string{}
		for _, r := range got {
			at[r.Offset] = string(r.Value)
		}
		n := 0
		for v, off := range acked {
			if off < uploadedEnd {
				n++
				if at[off] != v {
					t.Fatalf("uploaded offset %d lost with the data directory: got %q", off, firstN(at[off], 12))
				}
			}
		}
		if n < 30000 {
			t.Fatalf("only %d records were uploaded before the loss", n)
		}
		// The log continues after what was uploaded.
		r := produceTier(t, c2, 40000, 40001)
		if off := r[tierValue(40000)]; off < uploadedEnd {
			t.Fatalf("new record got offset %d, inside the uploaded range below %d", off, uploadedEnd)
		}
		c = c2
	})

	t.Run("BucketAlone", func(t *testing.T) {
		// No etcd, no broker: the snapshot and the objects are enough.
		store, err := objstore.NewS3(ctx, objstore.S3Config{Bucket: tierBucket, Prefix: tierPrefix, Endpoint: m.Endpoint(),
			PathStyle: true, AccessKey: miniotest.AccessKey, SecretKey: miniotest.SecretKey})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := store.Get(ctx, tiering.SnapshotKey(tierTopic, topicID, 0))
		if err != nil {
			t.Fatal(err)
		}
		snap, err := tiering.DecodeSnapshot(raw)
		if err != nil {
			t.Fatal(err)
		}
		listed := bucketObjects(t, mc, tierBucket, partPrefix)
		r := tiering.NewReader(store, tiering.ReaderConfig{})
		at := map[int64]string{}
		next := int64(0)
		for _, e := range snap.Segments {
			if _, ok := listed[tierPrefix+"/"+e.Key]; !ok {
				t.Fatalf("snapshot lists %s, not in the bucket", e.Key)
			}
			if e.BaseOffset != next {
				t.Fatalf("snapshot has a gap: segment at %d, expected %d", e.BaseOffset, next)
			}
			for from := e.BaseOffset; from <= e.LastOffset; {
				b, n, err := r.Read(ctx, e, from, 4<<20)
				if err != nil {
					t.Fatal(err)
				}
				err = segment.ForEachBatch(b, func(_ segment.BatchHeader, raw []byte) error {
					return segment.BatchRecords(raw, func(rec segment.Record) error {
						at[rec.Offset] = string(rec.Value)
						return nil
					})
				})
				if err != nil {
					t.Fatal(err)
				}
				from = n
			}
			next = e.LastOffset + 1
		}
		n := 0
		for v, off := range acked {
			if off < next {
				n++
				if at[off] != v {
					t.Fatalf("replay from the bucket: offset %d is %q", off, firstN(at[off], 12))
				}
			}
		}
		if n < 30000 {
			t.Fatalf("the bucket replayed only %d acknowledged records", n)
		}
	})

	t.Run("DamagedObject", func(t *testing.T) {
		// Flip one byte inside the first object's first frame.
		var first string
		for k := range bucketObjects(t, mc, tierBucket, partPrefix) {
			if strings.HasSuffix(k, ".seg") && (first == "" || k < first) {
				first = k
			}
		}
		obj, err := mc.GetObject(ctx, tierBucket, first, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(obj)
		if err != nil {
			t.Fatal(err)
		}
		data[50] ^= 0x20
		if _, err := mc.PutObject(ctx, tierBucket, first, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		// The broker's frame cache still holds the intact frames it read
		// before (verified then): restart it, which empties the cache.
		if err := b.Stop(); err != nil {
			t.Fatalf("SIGTERM: %v", err)
		}
		b.Restart()
		c = newClient(top, b)
		pc := c.ConsumePartition(tierTopic, 0, client.AtOffset(0), client.ConsumerConfig{MaxWait: 200 * time.Millisecond})
		defer pc.Close()
		recs, err := pc.Poll(ctx)
		if status.Code(err) != codes.DataLoss {
			t.Fatalf("consume of a damaged object: %d records, %v; want DATA_LOSS", len(recs), err)
		}
		key := strings.TrimPrefix(first, tierPrefix+"/")
		if !strings.Contains(err.Error(), key) {
			t.Fatalf("the error does not name the object %s: %v", key, err)
		}
		if len(recs) != 0 {
			t.Fatalf("%d records served from a damaged object", len(recs))
		}
		// The broker keeps serving what is intact.
		last := tierStatus(t, c).GetRemoteEndOffset() - 1
		pc2 := c.ConsumePartition(tierTopic, 0, client.AtOffset(last), client.ConsumerConfig{MaxWait: 200 * time.Millisecond})
		defer pc2.Close()
		got, err := pc2.Poll(ctx)
		if err != nil || len(got) == 0 || got[0].Offset != last {
			t.Fatalf("reading intact offset %d after the damage: %d records, %v", last, len(got), err)
		}
	})
}

// waitHighWatermark waits (at most 30 s) until topic/p's high watermark
// reaches end.
func waitHighWatermark(t *testing.T, c *client.Client, topic string, p int32, end int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := c.ListOffsets(ctx, topic, p, &stratav1.OffsetSpec{Spec: &stratav1.OffsetSpec_Latest{Latest: true}})
		cancel()
		if err == nil && r.GetHighWatermark() >= end {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("high watermark of %s/%d did not reach %d within 30s (last: %v, %v)", topic, p, end, r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
