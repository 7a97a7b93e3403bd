package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WALEntry is one partition's section of a WAL object: the record batches
// [BaseOffset, LastOffset] of topic/partition at leader epoch Epoch, at
// bytes [Pos, Pos+Len) of the object, with their CRC-32C.
type WALEntry struct {
	Topic      string `json:"topic"`
	TopicID    string `json:"topic_id"`
	Partition  int32  `json:"partition"`
	Epoch      int64  `json:"epoch"`
	BaseOffset int64  `json:"base_offset"`
	LastOffset int64  `json:"last_offset"`
	Pos        int64  `json:"pos"`
	Len        int64  `json:"len"`
	CRC        uint32 `json:"crc"`
	// Object is the WAL object's key (set by PartitionWAL; the record
	// holding the entry names it once).
	Object string `json:"object,omitempty"`
}

// WALObject is the commit record of a WAL object: wal/<broker:010d>/<seq:020d>.
// Entries lists only the partitions whose leadership the commit was
// fenced by; the object may hold more (sections whose commit failed).
type WALObject struct {
	Key      string     `json:"key"`
	BrokerID int32      `json:"broker_id"`
	Seq      int64      `json:"seq"`
	Entries  []WALEntry `json:"entries"`
	// etcdKey is where the record lives (set when read).
	etcdKey string
}

func (s *Store) walKey(broker int32, seq int64, chunk int) string {
	k := fmt.Sprintf("%swal/%010d/%020d", s.prefix, broker, seq)
	if chunk > 0 {
		k += fmt.Sprintf(".%d", chunk)
	}
	return k
}

// CommitWAL records a WAL object's sections, each fenced by the leadership
// of its partition (leads[i] for w.Entries[i]): in one transaction per up
// to maxTxnPuts partitions, so a large commit may land in parts. ok[i]
// reports whether w.Entries[i] was committed; a part whose fence failed
// commits nothing (one or more of its leaderships is gone, or the record
// key was taken: the caller finds which and ships the others again).
func (s *Store) CommitWAL(ctx context.Context, w WALObject, leads []Leadership) (ok []bool, err error) {
	if len(leads) != len(w.Entries) {
		return nil, fmt.Errorf("metadata: commit WAL %s: %d entries, %d leaderships", w.Key, len(w.Entries), len(leads))
	}
	ok = make([]bool, len(w.Entries))
	for chunk, lo := 0, 0; lo < len(w.Entries); chunk, lo = chunk+1, lo+maxTxnPuts {
		hi := min(len(w.Entries), lo+maxTxnPuts)
		v, err := json.Marshal(WALObject{Key: w.Key, BrokerID: w.BrokerID, Seq: w.Seq, Entries: w.Entries[lo:hi]})
		if err != nil {
			return ok, err
		}
		key := s.walKey(w.BrokerID, w.Seq, chunk)
		// Never over another record (a reused seq).
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
		for _, lead := range leads[lo:hi] {
			cmps = append(cmps, s.leaderFence(lead))
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, string(v))).Commit()
		if err != nil {
			return ok, fmt.Errorf("metadata: commit WAL %s: %w", w.Key, err)
		}
		for i := lo; i < hi; i++ {
			ok[i] = resp.Succeeded
		}
	}
	return ok, nil
}

// ListWAL returns every committed WAL record of the cluster, oldest
// first per broker.
func (s *Store) ListWAL(ctx context.Context) ([]WALObject, error) {
	resp, err := s.cli.Get(ctx, s.prefix+"wal/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metadata: list WAL: %w", err)
	}
	out := make([]WALObject, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var w WALObject
		if err := json.Unmarshal(kv.Value, &w); err != nil {
			return nil, fmt.Errorf("metadata: decode %s: %w", kv.Key, err)
		}
		w.etcdKey = string(kv.Key)
		out = append(out, w)
	}
	return out, nil
}

// PartitionWAL returns the committed WAL entries of topic/p (the
// incarnation topicID) that end at or after from, sorted by base offset.
func PartitionWAL(ws []WALObject, topic, topicID string, p int32, from int64) []WALEntry {
	var out []WALEntry
	for _, w := range ws {
		for _, e := range w.Entries {
			if e.Topic == topic && e.TopicID == topicID && e.Partition == p && e.LastOffset >= from {
				e.Object = w.Key
				out = append(out, e)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].BaseOffset < out[j].BaseOffset })
	return out
}

// DeleteWAL removes a WAL record read by ListWAL (one part of a large
// commit).
func (s *Store) DeleteWAL(ctx context.Context, w WALObject) error {
	if w.etcdKey == "" || !strings.HasPrefix(w.etcdKey, s.prefix+"wal/") {
		return fmt.Errorf("metadata: delete WAL %s: not a record read from etcd", w.Key)
	}
	if _, err := s.cli.Delete(ctx, w.etcdKey); err != nil {
		return fmt.Errorf("metadata: delete WAL record %s: %w", w.etcdKey, err)
	}
	return nil
}

// LeadershipCurrent reports whether lead is still the partition's current
// leadership.
func (s *Store) LeadershipCurrent(ctx context.Context, lead Leadership) (bool, error) {
	resp, err := s.cli.Get(ctx, s.leaderKey(lead))
	if err != nil {
		return false, fmt.Errorf("metadata: get leader of %s/%d: %w", lead.Topic, lead.Partition, err)
	}
	return len(resp.Kvs) == 1 && resp.Kvs[0].ModRevision == lead.ModRevision, nil
}
