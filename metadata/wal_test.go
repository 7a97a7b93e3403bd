package metadata

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// etcdMaxRequestBytes is etcd's default limit on a request (1.5 MiB).
const etcdMaxRequestBytes = 1536 << 10

// TestWALRecordSize: one transaction of CommitWAL (maxTxnPuts entries)
// fits etcd's default request limit even with the longest topic names and
// largest numbers, and reports the size of a typical entry (the etcd
// write a WAL flush costs per partition, in docs/architecture.md).
func TestWALRecordSize(t *testing.T) {
	record := func(topic string, big bool) int {
		w := WALObject{Key: "wal/0000000001/01764172800000000000-0a1b2c3d.wal", BrokerID: 1, Seq: 1764172800000000000}
		for p := range int32(maxTxnPuts) {
			e := WALEntry{Topic: topic, TopicID: "687b7c96cb7fe23a", Partition: p, Epoch: 3,
				BaseOffset: 1234567, LastOffset: 1234600, Pos: 123456, Len: 33000, CRC: 3735928559}
			if big {
				e.Partition, e.Epoch, e.BaseOffset, e.LastOffset, e.Pos, e.Len = math.MaxInt32, math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64
			}
			w.Entries = append(w.Entries, e)
		}
		b, err := json.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	if n := record(strings.Repeat("t", MaxTopicNameLength), true); n > etcdMaxRequestBytes {
		t.Fatalf("a WAL record of %d worst-case entries is %d bytes, above etcd's %d", maxTxnPuts, n, etcdMaxRequestBytes)
	}
	n := record("orders", false)
	t.Logf("a WAL record of %d entries (topic \"orders\") is %d bytes: %d bytes per partition", maxTxnPuts, n, n/maxTxnPuts)
}
