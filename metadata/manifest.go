package metadata

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Manifest changes of the background workers (DESIGN.md, "Background
// workers"): retention drops the oldest entries and advances the log
// start; compaction replaces entries by the objects it rewrote them into.
// Either way the change is one transaction fenced by the partition's
// leadership, and it records the objects it stops referencing as garbage,
// deleted only once a grace period has passed (readers holding the old
// manifest keep working meanwhile).

// MaxManifestChange bounds the entries one ManifestChange removes plus
// those it adds, keeping its transaction under etcd's 128 operations.
const MaxManifestChange = maxTxnPuts

// ManifestChange is one fenced change of a partition's manifest.
type ManifestChange struct {
	// Remove are entries to drop (by base offset); each must still exist.
	Remove []SegmentEntry
	// Add are entries to put (a base offset also in Remove is replaced).
	Add []SegmentEntry
	// Garbage are the object keys the change stops referencing, recorded
	// as one Garbage record in the same transaction. Reason says why.
	Garbage []string
	Reason  string
	// State, when set, is the partition's new state (retention: the new
	// log start offset).
	State *PartitionState
	// Compaction, when set, is the partition's new compaction status.
	Compaction *CompactionStatus
}

// Garbage is a record of objects no manifest references any more:
// garbage/<since_ms:020d>-<nonce>. The cluster's sweeper deletes the
// objects once SinceMs is older than the grace period, then the record.
type Garbage struct {
	Keys      []string `json:"keys"`
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	SinceMs   int64    `json:"since_ms"`
	Reason    string   `json:"reason,omitempty"`
	// etcdKey is where the record lives (set when read).
	etcdKey string
}

// CompactionStatus is a partition's compaction progress and last run:
// partitions/<t>/<p>/compaction, written by the leader (fenced).
type CompactionStatus struct {
	// CleanedEnd is the offset below which the log has been compacted
	// (0: never); the entries from it on are dirty.
	CleanedEnd int64 `json:"cleaned_end"`
	// DirtyRatio is dirty bytes / all uploaded bytes after the last run.
	DirtyRatio float64 `json:"dirty_ratio"`
	// KeptTombstones counts the tombstones the last run kept, the oldest
	// stamped OldestTombstoneMs: once delete.retention.ms has passed
	// since, a run is due whatever the ratio.
	KeptTombstones    int64 `json:"kept_tombstones,omitempty"`
	OldestTombstoneMs int64 `json:"oldest_tombstone_ms,omitempty"`
	LastRunMs         int64 `json:"last_run_ms"`
	LastRunDurationMs int64 `json:"last_run_duration_ms"`
	// The last run's input and output.
	ObjectsIn         int64 `json:"objects_in"`
	ObjectsOut        int64 `json:"objects_out"`
	BytesIn           int64 `json:"bytes_in"`
	BytesOut          int64 `json:"bytes_out"`
	RecordsRemoved    int64 `json:"records_removed"`
	TombstonesRemoved int64 `json:"tombstones_removed"`
}

func (s *Store) garbagePrefix() string { return s.prefix + "garbage/" }

func (s *Store) compactionKey(topic string, p int32) string {
	return s.partitionKey(topic, p, "compaction")
}

// ChangeManifest applies ch to lead's partition in one transaction that
// holds only while lead is current (else ErrFenced) and every entry to
// remove is still in the manifest as the caller saw it: at its base
// offset, naming the same object (else ErrManifestChanged). An entry
// replaced since (a compaction swap the caller's view missed, say one
// whose commit reported an error but landed) is not removed: that would
// drop offsets the caller does not know the entry holds, and an object
// no garbage record names. At most MaxManifestChange entries may be
// removed and added together.
func (s *Store) ChangeManifest(ctx context.Context, lead Leadership, ch ManifestChange) error {
	if n := len(ch.Remove) + len(ch.Add); n > MaxManifestChange {
		return fmt.Errorf("metadata: manifest change of %s/%d touches %d entries, at most %d", lead.Topic, lead.Partition, n, MaxManifestChange)
	}
	cmps := []clientv3.Cmp{s.leaderFence(lead)}
	revs, err := s.entryRevisions(ctx, lead, ch.Remove)
	if err != nil {
		return err
	}
	var ops []clientv3.Op
	added := map[string]bool{}
	for _, e := range ch.Add {
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		k := s.segmentKey(lead.Topic, lead.Partition, e.BaseOffset)
		added[k] = true
		ops = append(ops, clientv3.OpPut(k, string(v)))
	}
	for i, e := range ch.Remove {
		k := s.segmentKey(lead.Topic, lead.Partition, e.BaseOffset)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", revs[i]))
		if !added[k] { // etcd refuses a put and a delete of one key in a transaction
			ops = append(ops, clientv3.OpDelete(k))
		}
	}
	if len(ch.Garbage) > 0 {
		g := Garbage{Keys: ch.Garbage, Topic: lead.Topic, Partition: lead.Partition, SinceMs: s.now().UnixMilli(), Reason: ch.Reason}
		v, err := json.Marshal(g)
		if err != nil {
			return err
		}
		var nonce [4]byte
		_, _ = rand.Read(nonce[:])
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s%020d-%s", s.garbagePrefix(), g.SinceMs, hex.EncodeToString(nonce[:])), string(v)))
	}
	if ch.State != nil {
		v, _ := json.Marshal(ch.State)
		ops = append(ops, clientv3.OpPut(s.partitionKey(lead.Topic, lead.Partition, "state"), string(v)))
	}
	if ch.Compaction != nil {
		v, _ := json.Marshal(ch.Compaction)
		ops = append(ops, clientv3.OpPut(s.compactionKey(lead.Topic, lead.Partition), string(v)))
	}
	if len(ops) == 0 {
		return nil
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("metadata: change the manifest of %s/%d: %w", lead.Topic, lead.Partition, err)
	}
	if resp.Succeeded {
		return nil
	}
	if ok, err := s.LeadershipCurrent(ctx, lead); err == nil && ok {
		return fmt.Errorf("%w: %s/%d", ErrManifestChanged, lead.Topic, lead.Partition)
	}
	return fmt.Errorf("%w: %s/%d epoch %d", ErrFenced, lead.Topic, lead.Partition, lead.Epoch)
}

// entryRevisions returns the mod revision of each of es's manifest
// entries (one read), or ErrManifestChanged (ErrFenced once lead is not
// current) when one is gone or names another object.
func (s *Store) entryRevisions(ctx context.Context, lead Leadership, es []SegmentEntry) ([]int64, error) {
	if len(es) == 0 {
		return nil, nil
	}
	gets := make([]clientv3.Op, len(es))
	for i, e := range es {
		gets[i] = clientv3.OpGet(s.segmentKey(lead.Topic, lead.Partition, e.BaseOffset))
	}
	resp, err := s.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return nil, fmt.Errorf("metadata: read the manifest of %s/%d: %w", lead.Topic, lead.Partition, err)
	}
	revs := make([]int64, len(es))
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().GetKvs()
		var cur SegmentEntry
		if len(kvs) == 1 {
			if err := json.Unmarshal(kvs[0].Value, &cur); err != nil {
				return nil, fmt.Errorf("metadata: decode %s: %w", kvs[0].Key, err)
			}
		}
		if len(kvs) != 1 || cur.Key != es[i].Key {
			if ok, err := s.LeadershipCurrent(ctx, lead); err == nil && ok {
				return nil, fmt.Errorf("%w: %s/%d: the entry at %d is not %s any more", ErrManifestChanged, lead.Topic, lead.Partition, es[i].BaseOffset, es[i].Key)
			}
			return nil, fmt.Errorf("%w: %s/%d epoch %d", ErrFenced, lead.Topic, lead.Partition, lead.Epoch)
		}
		revs[i] = kvs[0].ModRevision
	}
	return revs, nil
}

// GetCompactionStatus returns a partition's compaction status; ok is
// false when it was never compacted.
func (s *Store) GetCompactionStatus(ctx context.Context, topic string, p int32) (CompactionStatus, bool, error) {
	resp, err := s.cli.Get(ctx, s.compactionKey(topic, p))
	if err != nil {
		return CompactionStatus{}, false, fmt.Errorf("metadata: get compaction status of %s/%d: %w", topic, p, err)
	}
	if len(resp.Kvs) == 0 {
		return CompactionStatus{}, false, nil
	}
	st, err := DecodeCompactionStatus(resp.Kvs[0].Value)
	if err != nil {
		return st, false, fmt.Errorf("metadata: compaction status of %s/%d: %w", topic, p, err)
	}
	return st, true, nil
}

// DecodeCompactionStatus decodes and checks a compaction status.
func DecodeCompactionStatus(b []byte) (CompactionStatus, error) {
	var st CompactionStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decode compaction status: %w", err)
	}
	if st.CleanedEnd < 0 || !(st.DirtyRatio >= 0 && st.DirtyRatio <= 1) || st.KeptTombstones < 0 {
		return st, fmt.Errorf("compaction status with cleaned end %d, dirty ratio %v, %d kept tombstones", st.CleanedEnd, st.DirtyRatio, st.KeptTombstones)
	}
	return st, nil
}

// ListGarbage returns up to limit garbage records, oldest first.
func (s *Store) ListGarbage(ctx context.Context, limit int) ([]Garbage, error) {
	resp, err := s.cli.Get(ctx, s.garbagePrefix(), clientv3.WithPrefix(), clientv3.WithLimit(int64(limit)),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("metadata: list garbage: %w", err)
	}
	out := make([]Garbage, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		g, err := DecodeGarbage(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("metadata: %s: %w", kv.Key, err)
		}
		g.etcdKey = string(kv.Key)
		out = append(out, g)
	}
	return out, nil
}

// DecodeGarbage decodes and checks a garbage record.
func DecodeGarbage(b []byte) (Garbage, error) {
	var g Garbage
	if err := json.Unmarshal(b, &g); err != nil {
		return g, fmt.Errorf("decode garbage record: %w", err)
	}
	if len(g.Keys) == 0 || g.SinceMs <= 0 {
		return g, fmt.Errorf("garbage record with %d keys since %d", len(g.Keys), g.SinceMs)
	}
	for _, k := range g.Keys {
		if k == "" || strings.HasPrefix(k, "/") {
			return g, fmt.Errorf("garbage record names the invalid key %q", k)
		}
	}
	return g, nil
}

// DeleteGarbage removes a garbage record read by ListGarbage, fenced by
// the controller's election key (ErrFenced once it is not current).
func (s *Store) DeleteGarbage(ctx context.Context, fence ControllerFence, g Garbage) error {
	if g.etcdKey == "" || !strings.HasPrefix(g.etcdKey, s.garbagePrefix()) {
		return fmt.Errorf("metadata: delete garbage record: not a record read from etcd")
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(fence.Key), "=", fence.Rev)).
		Then(clientv3.OpDelete(g.etcdKey)).
		Commit()
	if err != nil {
		return fmt.Errorf("metadata: delete garbage record %s: %w", g.etcdKey, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: controller %s (rev %d)", ErrFenced, fence.Key, fence.Rev)
	}
	return nil
}

// SegmentKeys returns the object key of every manifest entry of topic's
// partitions (one range read).
func (s *Store) SegmentKeys(ctx context.Context, topic string) (map[string]bool, error) {
	resp, err := s.cli.Get(ctx, s.partitionPrefix(topic), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metadata: list manifest of %s: %w", topic, err)
	}
	out := map[string]bool{}
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), s.partitionPrefix(topic))
		if _, leaf, ok := strings.Cut(rest, "/"); !ok || !strings.HasPrefix(leaf, "segments/") {
			continue
		}
		var e SegmentEntry
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("metadata: decode %s: %w", kv.Key, err)
		}
		out[e.Key] = true
	}
	return out, nil
}
