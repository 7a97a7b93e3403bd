package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SegmentEntry is the manifest entry of a segment uploaded to the object
// store: partitions/<topic>/<p>/segments/<base:020d>.
type SegmentEntry struct {
	// Key is the object's key in the store (without the store's prefix).
	Key          string `json:"key"`
	BaseOffset   int64  `json:"base_offset"`
	LastOffset   int64  `json:"last_offset"`
	MaxTimestamp int64  `json:"max_timestamp"`
	Records      int64  `json:"records"`
	// Size is the object's size; RawSize the size of its batches.
	Size       int64 `json:"size"`
	RawSize    int64 `json:"raw_size"`
	Epoch      int64 `json:"epoch"`
	UploadedMs int64 `json:"uploaded_ms"`
	// Producers is set when a producer snapshot (the idempotent
	// producers' state as of the segment's end) was written beside it.
	Producers bool `json:"producers,omitempty"`
}

func (s *Store) segmentKey(topic string, p int32, base int64) string {
	return s.partitionKey(topic, p, fmt.Sprintf("segments/%020d", base))
}

// CommitSegment records an uploaded segment in the partition's manifest,
// fenced by lead: it fails with ErrFenced once lead is not current, so a
// deposed leader can never add to the manifest.
func (s *Store) CommitSegment(ctx context.Context, lead Leadership, e SegmentEntry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.fencedPut(ctx, lead, s.segmentKey(lead.Topic, lead.Partition, e.BaseOffset), string(v))
}

// ListSegments returns a partition's manifest, sorted by base offset.
func (s *Store) ListSegments(ctx context.Context, topic string, p int32) ([]SegmentEntry, error) {
	resp, err := s.cli.Get(ctx, s.partitionKey(topic, p, "segments/"), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metadata: list segments of %s/%d: %w", topic, p, err)
	}
	out := make([]SegmentEntry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e SegmentEntry
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("metadata: decode %s: %w", kv.Key, err)
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].BaseOffset < out[j].BaseOffset })
	return out, nil
}
