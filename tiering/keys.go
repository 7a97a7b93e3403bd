package tiering

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/strata-stream/strata/metadata"
)

// ObjectKey is the key of a sealed segment object. The topic's id (one per
// incarnation) is part of it: a topic deleted and created again under the
// same name starts again at offset 0 and epoch 1, and its objects must
// never be mistaken for the old ones (or hit their cached frames).
func ObjectKey(topic, topicID string, partition int32, base, last, epoch int64) string {
	return fmt.Sprintf("%s%020d-%020d-e%d.seg", PartitionPrefix(topic, topicID, partition), base, last, epoch)
}

// PartitionPrefix is the key prefix of a partition's objects.
func PartitionPrefix(topic, topicID string, partition int32) string {
	return fmt.Sprintf("topics/%s.%s/%d/", topic, topicID, partition)
}

// SnapshotKey is the key of a partition's manifest snapshot.
func SnapshotKey(topic, topicID string, partition int32) string {
	return PartitionPrefix(topic, topicID, partition) + "manifest.json"
}

// Snapshot is a partition's manifest as written to the bucket: with it,
// the bucket alone describes every uploaded segment.
type Snapshot struct {
	Version   int                     `json:"version"`
	Topic     string                  `json:"topic"`
	TopicID   string                  `json:"topic_id"`
	Partition int32                   `json:"partition"`
	Segments  []metadata.SegmentEntry `json:"segments"`
}

// EncodeSnapshot renders a snapshot (segments sorted by base offset).
func EncodeSnapshot(s Snapshot) ([]byte, error) {
	s.Version = 1
	sort.Slice(s.Segments, func(i, j int) bool { return s.Segments[i].BaseOffset < s.Segments[j].BaseOffset })
	return json.MarshalIndent(s, "", "  ")
}

// DecodeSnapshot parses a snapshot and checks that its segments are sorted,
// non-overlapping and well-formed.
func DecodeSnapshot(b []byte) (Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("tiering: decode snapshot: %w", err)
	}
	if s.Version != 1 {
		return s, fmt.Errorf("tiering: snapshot version %d not supported", s.Version)
	}
	for i, e := range s.Segments {
		if e.Key == "" || e.LastOffset < e.BaseOffset || (i > 0 && e.BaseOffset <= s.Segments[i-1].LastOffset) {
			return s, fmt.Errorf("tiering: snapshot of %s/%d: segment %d (%s, [%d, %d]) is malformed or overlaps", s.Topic, s.Partition, i, e.Key, e.BaseOffset, e.LastOffset)
		}
	}
	return s, nil
}
