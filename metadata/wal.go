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
// to maxTxnPuts partitions, so a large commit may land in parts. It
// returns the entries committed; a part whose fence failed commits
// nothing and its entries are returned in fenced (one or more of their
// leaderships is gone, or the record key was taken; the caller finds
// which and ships the others again).
func (s *Store) CommitWAL(ctx context.Context, w WALObject, leads []Leadership) (committed, fenced []WALEntry, err error) {
	if len(leads) != len(w.Entries) {
		return nil, nil, fmt.Errorf("metadata: commit WAL %s: %d entries, %d leaderships", w.Key, len(w.Entries), len(leads))
	}
	for chunk, lo := 0, 0; lo < len(w.Entries); chunk, lo = chunk+1, lo+maxTxnPuts {
		hi := min(len(w.Entries), lo+maxTxnPuts)
		part := WALObject{Key: w.Key, BrokerID: w.BrokerID, Seq: w.Seq, Entries: w.Entries[lo:hi]}
		v, err := json.Marshal(part)
		if err != nil {
			return committed, fenced, err
		}
		key := s.walKey(w.BrokerID, w.Seq, chunk)
		// Never over another record (a reused seq).
		cmps := make([]clientv3.Cmp, 0, hi-lo+1)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		for _, lead := range leads[lo:hi] {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.partitionKey(lead.Topic, lead.Partition, "leader")), "=", lead.ModRevision))
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, string(v))).Commit()
		if err != nil {
			return committed, fenced, fmt.Errorf("metadata: commit WAL %s: %w", w.Key, err)
		}
		if resp.Succeeded {
			committed = append(committed, part.Entries...)
		} else {
			fenced = append(fenced, part.Entries...)
		}
	}
	return committed, fenced, nil
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

// DeleteWAL removes a WAL record (every part of it that was read).
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
	resp, err := s.cli.Get(ctx, s.partitionKey(lead.Topic, lead.Partition, "leader"))
	if err != nil {
		return false, fmt.Errorf("metadata: get leader of %s/%d: %w", lead.Topic, lead.Partition, err)
	}
	return len(resp.Kvs) == 1 && resp.Kvs[0].ModRevision == lead.ModRevision, nil
}
