package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/strata-stream/strata/metadata"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering"
	"github.com/strata-stream/strata/tiering/objstore"
)

// keyedBatch is one batch of n records of keys key-<from>..., values
// tagged with tag, stamped ts (ms).
func keyedBatch(from, n int, tag string, ts int64) []byte {
	recs := make([]segment.Record, n)
	for i := range recs {
		recs[i] = segment.Record{Timestamp: ts, Key: fmt.Appendf(nil, "key-%04d", from+i), Value: fmt.Appendf(nil, "%s-%04d-%0200d", tag, from+i, 0)}
	}
	return segment.AppendBatch(nil, segment.NoProducer, recs)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 20s, still not %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRetentionWithoutObjectStore: without an object store, retention
// deletes the local segments whose records are all older than
// retention.ms, moves the log start with them (in etcd too), and a
// consumer below it gets OUT_OF_RANGE.
func TestRetentionWithoutObjectStore(t *testing.T) {
	b := startBroker(t, func(c *Config) { c.RetentionInterval = 30 * time.Millisecond })
	b.createTopic(t, "ret", 1, map[string]string{"segment.bytes": "16384", "max.message.bytes": "8192", "retention.ms": "3600000"})
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	for i := range 40 { // 40 × 2.4 KB: several segments of old records
		b.produceOK(t, "ret", 0, keyedBatch(i*10, 10, "old", old))
	}
	firstNew := b.produceOK(t, "ret", 0, keyedBatch(0, 10, "new", time.Now().UnixMilli())).GetBaseOffset()
	part, err := b.srv.partition("ret", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Exactly the segments of old records only go: the first one left
	// holds the first recent record (retention runs every 30 ms while the
	// segments roll, so it takes a few passes).
	holdsFirstNew := func() bool {
		segs := part.log.Segments()
		return segs[0].BaseOffset <= firstNew && firstNew < segs[0].NextOffset
	}
	waitFor(t, "the old segments expired", holdsFirstNew)
	time.Sleep(200 * time.Millisecond) // more passes: nothing more expires
	start := b.listOffset(t, "ret", 0, earliest()).GetOffset()
	if segs := part.log.Segments(); !holdsFirstNew() || segs[0].BaseOffset != start || start == 0 {
		t.Fatalf("log start %d; first recent record at %d; local segments %+v", start, firstNew, segs)
	}
	st, err := b.srv.store.GetPartitionState(rpcCtx(t), "ret", 0)
	if err != nil || st.LogStartOffset != start {
		t.Fatalf("state in etcd %+v %v, want log start %d", st, err, start)
	}
	stream, err := b.consume.Consume(rpcCtx(t), &stratav1.ConsumeRequest{Topic: "ret", Partition: 0, Start: exact(0)})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, "consume below the log start", err, codes.OutOfRange)
	if got := values(t, b.consumeRange(t, "ret", 0, firstNew, firstNew+10), firstNew); len(got) != 10 {
		t.Fatalf("recent records: %q", got)
	}
}

// TestCompactedReadsComeFromTheBucket: once a compacted partition has
// been compacted, reads below the compacted end come from the compacted
// objects, though the local log still holds the uncompacted segments;
// the local copies go with the next eviction.
func TestCompactedReadsComeFromTheBucket(t *testing.T) {
	mem := objstore.NewMem()
	b := startBroker(t, func(c *Config) {
		c.Objects = mem
		c.UploadInterval = 30 * time.Millisecond
		c.CompactionInterval = time.Hour // run by hand
	})
	b.createTopic(t, "kv", 1, map[string]string{"segment.bytes": "16384", "max.message.bytes": "8192", "cleanup.policy": "compact"})
	now := time.Now().UnixMilli()
	for round := range 5 {
		for k := 0; k < 50; k += 10 {
			b.produceOK(t, "kv", 0, keyedBatch(k, 10, fmt.Sprint("r", round), now))
		}
	}
	for i := range 20 { // fillers: the keyed records are all in sealed segments
		b.produceOK(t, "kv", 0, keyedBatch(1000+i*10, 10, "fill", now))
	}
	part, err := b.srv.partition("kv", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "uploaded", func() bool { return part.remoteEnd() > 250 })
	if err := b.srv.compactPartition(rpcCtx(t), part); err != nil {
		t.Fatal(err)
	}
	cs := part.compactionStatus()
	if cs.GetCleanedEndOffset() < 250 || cs.GetLastRunMs() == 0 || cs.GetLastRunRecordsRemoved() < 200 {
		t.Fatalf("compaction status %+v", cs)
	}
	d, err := b.admin.DescribeTopic(rpcCtx(t), &stratav1.DescribeTopicRequest{Name: "kv"})
	if err != nil || d.GetTopic().GetPartitions()[0].GetCompaction().GetCleanedEndOffset() != cs.GetCleanedEndOffset() {
		t.Fatalf("describe: %v %v", d, err)
	}
	_, end := part.offsets()
	data := b.consumeRange(t, "kv", 0, 0, end)
	perKey := map[string][]string{}
	err = segment.ForEachBatch(data, func(_ segment.BatchHeader, raw []byte) error {
		return segment.BatchRecords(raw, func(r segment.Record) error {
			perKey[string(r.Key)] = append(perKey[string(r.Key)], string(r.Value[:7]))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range 50 {
		if got := perKey[fmt.Sprintf("key-%04d", k)]; len(got) != 1 || got[0] != fmt.Sprintf("r4-%04d", k) {
			t.Fatalf("key-%04d read as %v, want only its latest value", k, got)
		}
	}
	// The local copies below the compacted end are evicted.
	waitFor(t, "local copies evicted", func() bool {
		start, _ := part.log.Offsets()
		return start > 0 && start <= cs.GetCleanedEndOffset()
	})
}

// TestWorkersAreFenced: a broker that lost a partition's leadership
// (here: its leader key is gone, as after a lease expiry) commits neither
// a compaction swap nor a retention expiry; the manifest stays as it was
// and no garbage is recorded.
func TestWorkersAreFenced(t *testing.T) {
	mem := objstore.NewMem()
	b := startBroker(t, func(c *Config) {
		c.Objects = mem
		c.UploadInterval = 30 * time.Millisecond
		c.CompactionInterval = time.Hour
		c.RetentionInterval = time.Hour
	})
	b.createTopic(t, "f", 1, map[string]string{"segment.bytes": "16384", "max.message.bytes": "8192", "cleanup.policy": "compact,delete"})
	for round := range 3 {
		for k := 0; k < 50; k += 10 {
			b.produceOK(t, "f", 0, keyedBatch(k, 10, fmt.Sprint("r", round), time.Now().UnixMilli()))
		}
	}
	part, err := b.srv.partition("f", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "uploaded", func() bool { return part.remoteEnd() > 100 })
	ctx := context.Background()
	before, err := b.srv.store.ListSegments(ctx, "f", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.srv.store.Client().Delete(ctx, b.srv.store.Prefix()+"partitions/f/0/leader"); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.compactPartition(ctx, part); !errors.Is(err, metadata.ErrFenced) {
		t.Fatalf("compaction without the leadership: %v, want ErrFenced", err)
	}
	cfg := *part.config.Load()
	cfg.RetentionMs = 0 // everything expires
	part.config.Store(&cfg)
	if err := b.srv.applyRetention(ctx, part); !errors.Is(err, metadata.ErrFenced) {
		t.Fatalf("retention without the leadership: %v, want ErrFenced", err)
	}
	after, err := b.srv.store.ListSegments(ctx, "f", 0)
	if err != nil || fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a fenced broker changed the manifest:\n%v\n%v (%v)", before, after, err)
	}
	if gs, err := b.srv.store.ListGarbage(ctx, 0); err != nil || len(gs) != 0 {
		t.Fatalf("a fenced broker recorded garbage: %v %v", gs, err)
	}
	if st, _ := b.srv.store.GetPartitionState(ctx, "f", 0); st.LogStartOffset != 0 {
		t.Fatalf("a fenced broker moved the log start: %+v", st)
	}
}

// TestEverythingExpired: when retention expires every uploaded segment
// (the manifest is empty), the log start alone says where the log is:
// the WAL objects below it are garbage, and a leader that lost its disk
// continues after it, never reusing an offset.
func TestEverythingExpired(t *testing.T) {
	mem := objstore.NewMem()
	b := startWALBroker(t, mem, func(c *Config) {
		c.WALMaxAge = 200 * time.Millisecond
		c.WALGCInterval = 100 * time.Millisecond
		c.UploadInterval = 50 * time.Millisecond
		c.RetentionInterval = 50 * time.Millisecond
	})
	b.createTopic(t, "gone", 1, map[string]string{"retention.ms": "3600000"})
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	for i := range 20 {
		resp, err := b.produce.Produce(rpcCtx(t), &stratav1.ProduceRequest{Acks: stratav1.Acks_ACKS_ALL,
			Partitions: []*stratav1.PartitionRecords{{Topic: "gone", Records: keyedBatch(i, 1, "old", old)}}})
		if err != nil || resp.GetPartitions()[0].GetError() != nil {
			t.Fatalf("produce %d: %v %v", i, err, resp)
		}
	}
	ctx := context.Background()
	waitFor(t, "every record expired", func() bool {
		st, err := b.srv.store.GetPartitionState(ctx, "gone", 0)
		es, _ := b.srv.store.ListSegments(ctx, "gone", 0)
		return err == nil && st.LogStartOffset == 20 && len(es) == 0
	})
	walLeft := func() int {
		n := 0
		_ = mem.List(ctx, "wal/", func(objstore.ObjectInfo) error { n++; return nil })
		return n
	}
	waitFor(t, "the WAL objects below the log start deleted", func() bool { return walLeft() == 0 })
	stream, err := b.consume.Consume(rpcCtx(t), &stratav1.ConsumeRequest{Topic: "gone", Partition: 0, Start: exact(5)})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, "consume below the log start", err, codes.OutOfRange)

	// The leader loses its disk: it continues at the log start.
	part, err := b.srv.partition("gone", 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(part.log.Segments()[0].Path)
	b.srv.opening.Lock()
	b.srv.dropPartition(part)
	err = os.RemoveAll(dir)
	b.srv.opening.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the partition reopened", func() bool { _, err := b.srv.partition("gone", 0); return err == nil })
	if r := b.produceOK(t, "gone", 0, keyedBatch(0, 1, "new", time.Now().UnixMilli())); r.GetBaseOffset() != 20 {
		t.Fatalf("first record after the disk loss at offset %d, want 20 (after the log start)", r.GetBaseOffset())
	}
}

// TestRetentionAfterAnUnseenSwap: a compaction swap whose commit
// reported an error but landed in etcd leaves the leader's view of the
// manifest stale. Retention working from that view must not remove the
// entry that replaced the one it expires (with the later offsets it
// holds, and an object no garbage record names): the change is refused,
// and the leader reads the manifest again.
func TestRetentionAfterAnUnseenSwap(t *testing.T) {
	mem := objstore.NewMem()
	b := startBroker(t, func(c *Config) {
		c.Objects = mem
		c.UploadInterval = 30 * time.Millisecond
		c.CompactionInterval = time.Hour
		c.RetentionInterval = time.Hour
	})
	b.createTopic(t, "s", 1, map[string]string{"segment.bytes": "16384", "max.message.bytes": "8192", "retention.ms": "-1"})
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	for i := range 8 {
		b.produceOK(t, "s", 0, keyedBatch(i*10, 10, "old", old))
	}
	for i := range 30 {
		b.produceOK(t, "s", 0, keyedBatch(i*10, 10, "new", time.Now().UnixMilli()))
	}
	part, err := b.srv.partition("s", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every sealed segment uploaded", func() bool {
		segs := part.log.Segments()
		last := segs[len(segs)-1]
		return last.Active && part.remoteEnd() == last.BaseOffset
	})
	ctx := context.Background()
	es, err := b.srv.store.ListSegments(ctx, "s", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) < 3 || es[0].MaxTimestamp != old || es[1].MaxTimestamp == old {
		t.Fatalf("want a first segment of old records only, then newer ones: %+v", es)
	}
	// The swap that landed unseen: es[0] and es[1] merged into one object.
	var batches []byte
	for _, e := range es[:2] {
		obj, err := mem.Get(ctx, e.Key)
		if err != nil {
			t.Fatal(err)
		}
		_, bs, err := segment.DecodeObject(obj)
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, bs...)
	}
	obj, merged, err := tiering.EncodeSegment(tiering.SegmentUpload{Topic: "s", TopicID: part.topicID, Epoch: part.epoch, Batches: batches})
	if err != nil {
		t.Fatal(err)
	}
	merged.Key = tiering.CompactedObjectKey("s", part.topicID, 0, merged.BaseOffset, merged.LastOffset, part.epoch, 1)
	if err := mem.Put(ctx, merged.Key, obj); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.store.ChangeManifest(ctx, part.lead, metadata.ManifestChange{Remove: es[:2], Add: []metadata.SegmentEntry{merged},
		Garbage: []string{es[0].Key, es[1].Key}, Reason: "compaction"}); err != nil {
		t.Fatal(err)
	}
	want, err := b.srv.store.ListSegments(ctx, "s", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Retention from the stale view expires es[0] only.
	cfg := *part.config.Load()
	cfg.RetentionMs = time.Hour.Milliseconds()
	part.config.Store(&cfg)
	if err := b.srv.applyRetention(ctx, part); !errors.Is(err, metadata.ErrManifestChanged) {
		t.Fatalf("retention from a stale view: %v, want ErrManifestChanged", err)
	}
	if got, err := b.srv.store.ListSegments(ctx, "s", 0); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("retention from a stale view changed the manifest:\n got %v\nwant %v (%v)", got, want, err)
	}
	if st, _ := b.srv.store.GetPartitionState(ctx, "s", 0); st.LogStartOffset != 0 {
		t.Fatalf("retention from a stale view moved the log start: %+v", st)
	}
	// The leader's view is the manifest again: the next pass expires
	// nothing (the merged object holds recent records).
	part.rmu.RLock()
	view := append([]metadata.SegmentEntry(nil), part.remote.entries...)
	part.rmu.RUnlock()
	if fmt.Sprint(view) != fmt.Sprint(want) {
		t.Fatalf("the leader's view after a refused change:\n got %v\nwant %v", view, want)
	}
	if err := b.srv.applyRetention(ctx, part); err != nil {
		t.Fatal(err)
	}
	if got := values(t, b.consumeRange(t, "s", 0, es[1].BaseOffset, es[1].LastOffset+1), es[1].BaseOffset); int64(len(got)) != es[1].LastOffset+1-es[1].BaseOffset {
		t.Fatalf("offsets [%d, %d] read as %d records", es[1].BaseOffset, es[1].LastOffset, len(got))
	}
}

// TestTombstonesKeptForever: delete.retention.ms at its largest value
// (Long.MAX_VALUE in Kafka: keep tombstones forever) keeps them; it must
// not overflow into a negative duration that drops them at once.
func TestTombstonesKeptForever(t *testing.T) {
	mem := objstore.NewMem()
	b := startBroker(t, func(c *Config) {
		c.Objects = mem
		c.UploadInterval = 30 * time.Millisecond
		c.CompactionInterval = time.Hour // run by hand
	})
	b.createTopic(t, "kv", 1, map[string]string{"segment.bytes": "16384", "max.message.bytes": "8192", "cleanup.policy": "compact",
		"delete.retention.ms": "9223372036854775807"})
	now := time.Now().UnixMilli()
	for k := 0; k < 50; k += 10 {
		b.produceOK(t, "kv", 0, keyedBatch(k, 10, "v", now))
	}
	tombstones := make([]segment.Record, 10)
	for i := range tombstones {
		tombstones[i] = segment.Record{Timestamp: now, Key: fmt.Appendf(nil, "key-%04d", i)}
	}
	b.produceOK(t, "kv", 0, segment.AppendBatch(nil, segment.NoProducer, tombstones))
	for i := range 20 { // fillers: the tombstones are in a sealed segment, not in the log's last batch
		b.produceOK(t, "kv", 0, keyedBatch(1000+i*10, 10, "fill", now))
	}
	part, err := b.srv.partition("kv", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "uploaded", func() bool { return part.remoteEnd() > 100 })
	if err := b.srv.compactPartition(rpcCtx(t), part); err != nil {
		t.Fatal(err)
	}
	if cs := part.compactionStatus(); cs.GetLastRunMs() == 0 || cs.GetLastRunTombstonesRemoved() != 0 {
		t.Fatalf("compaction status %+v", cs)
	}
	_, end := part.offsets()
	deleted := 0
	err = segment.ForEachBatch(b.consumeRange(t, "kv", 0, 0, end), func(_ segment.BatchHeader, raw []byte) error {
		return segment.BatchRecords(raw, func(r segment.Record) error {
			if r.Value == nil {
				deleted++
			}
			return nil
		})
	})
	if err != nil || deleted != 10 {
		t.Fatalf("%d tombstones after compaction, want the 10 (%v)", deleted, err)
	}
}

// TestCompactionKeepsTheLogStart: compaction never moves the log start,
// even when a whole group of inputs at the start of the log comes out
// empty (their every record superseded): a consumer whose position lies
// in those offsets reads on from the next record, as after any offsets
// compaction emptied, instead of getting OUT_OF_RANGE.
func TestCompactionKeepsTheLogStart(t *testing.T) {
	mem := objstore.NewMem()
	b := startBroker(t, func(c *Config) {
		c.Objects = mem
		c.UploadInterval = 30 * time.Millisecond
		c.CompactionInterval = time.Hour // run by hand
	})
	b.createTopic(t, "kv", 1, map[string]string{"segment.bytes": "16384", "max.message.bytes": "8192", "cleanup.policy": "compact"})
	now := time.Now().UnixMilli()
	// The same 25 keys again and again: two batches a segment, more than
	// compactionMaxInputs segments of superseded records.
	batches := 2*compactionMaxInputs + 10
	for i := range batches {
		b.produceOK(t, "kv", 0, keyedBatch(0, 25, fmt.Sprint("r", i), now))
	}
	for i := range 10 { // fillers after them
		b.produceOK(t, "kv", 0, keyedBatch(1000+i*25, 25, "fill", now))
	}
	part, err := b.srv.partition("kv", 0)
	if err != nil {
		t.Fatal(err)
	}
	live := int64(25 * (batches - 1)) // the first offset of the keys' last batch
	waitFor(t, "uploaded", func() bool { return part.remoteEnd() > live+25 })
	if err := b.srv.compactPartition(rpcCtx(t), part); err != nil {
		t.Fatal(err)
	}
	if cs := part.compactionStatus(); cs.GetLastRunObjectsIn() <= int64(compactionMaxInputs) {
		t.Fatalf("the run rewrote %d objects; want more than a group of %d", cs.GetLastRunObjectsIn(), compactionMaxInputs)
	}
	// (Reads below the compacted end come from the bucket; the local
	// copies go too.)
	waitFor(t, "local copies evicted", func() bool {
		start, _ := part.log.Offsets()
		return start >= live
	})
	if got := b.listOffset(t, "kv", 0, earliest()).GetOffset(); got != 0 {
		t.Fatalf("earliest offset %d after compaction, want 0: compaction moved the log start", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	stream, err := b.consume.Consume(ctx, &stratav1.ConsumeRequest{Topic: "kv", Partition: 0, Start: exact(100), MaxWaitMs: 100})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("consume from 100, emptied by compaction: %v", err)
	}
	first := int64(-1)
	err = segment.ForEachBatch(resp.GetRecords(), func(_ segment.BatchHeader, raw []byte) error {
		return segment.BatchRecords(raw, func(r segment.Record) error {
			if first < 0 {
				first = r.Offset
			}
			return nil
		})
	})
	if err != nil || first != live {
		t.Fatalf("consume from 100: first record at %d (%v), want the first live one at %d", first, err, live)
	}
}
