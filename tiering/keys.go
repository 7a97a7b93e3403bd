package tiering

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/strata-stream/strata/metadata"
)

// ObjectKey is the key of a sealed segment object. The topic's id (one per
// incarnation) is part of it: a topic deleted and created again under the
// same name starts again at offset 0 and epoch 1, and its objects must
// never be mistaken for the old ones (or hit their cached frames).
func ObjectKey(topic, topicID string, partition int32, base, last, epoch int64) string {
	return fmt.Sprintf("%s%020d-%020d-e%d.seg", PartitionPrefix(topic, topicID, partition), base, last, epoch)
}

// CompactedObjectKey is the key of a sealed object written by compaction
// (or by merging small segments): ObjectKey with a random nonce, so that
// it never equals the key of an object it replaces, nor one a crashed run
// left behind, whatever offsets it covers.
func CompactedObjectKey(topic, topicID string, partition int32, base, last, epoch int64, nonce uint32) string {
	return fmt.Sprintf("%s%020d-%020d-e%d-c%08x.seg", PartitionPrefix(topic, topicID, partition), base, last, epoch, nonce)
}

// EntryObjects returns the object keys of manifest entries, in order:
// each one's sealed object and, when it has one, its producer snapshot.
// They are the garbage of a manifest change that drops the entries.
func EntryObjects(es []metadata.SegmentEntry) []string {
	var keys []string
	for _, e := range es {
		keys = append(keys, e.Key)
		if e.Producers {
			keys = append(keys, ProducerSnapshotKey(e.Key))
		}
	}
	return keys
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

// KeyKind is what an object key names.
type KeyKind int

const (
	KeyUnknown   KeyKind = iota
	KeySegment           // a sealed segment object (uploaded or compacted)
	KeyProducers         // the producer snapshot beside a sealed segment object
	KeySnapshot          // a partition's manifest snapshot
	KeyWAL               // a WAL object
)

// ParsedKey is an object key taken apart.
type ParsedKey struct {
	Kind      KeyKind
	Topic     string
	TopicID   string
	Partition int32
	// Segment is the key of the sealed segment object (for KeyProducers,
	// the one the snapshot belongs to).
	Segment string
}

// ParseKey takes apart a key this package builds (ObjectKey,
// CompactedObjectKey, ProducerSnapshotKey, SnapshotKey, WALKey); ok is
// false for any other key, which the garbage collector never touches.
func ParseKey(key string) (ParsedKey, bool) {
	if rest, ok := strings.CutPrefix(key, "wal/"); ok {
		broker, name, ok := strings.Cut(rest, "/")
		seq, nonce, ok2 := strings.Cut(strings.TrimSuffix(name, ".wal"), "-")
		if !ok || !ok2 || !strings.HasSuffix(name, ".wal") || !digits(broker, 10) || !digits(seq, 20) || !hexDigits(nonce, 8) {
			return ParsedKey{}, false
		}
		return ParsedKey{Kind: KeyWAL}, true
	}
	rest, ok := strings.CutPrefix(key, "topics/")
	if !ok {
		return ParsedKey{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return ParsedKey{}, false
	}
	dot := strings.LastIndexByte(parts[0], '.')
	if dot < 0 {
		return ParsedKey{}, false
	}
	pk := ParsedKey{Topic: parts[0][:dot], TopicID: parts[0][dot+1:]}
	p, err := strconv.ParseInt(parts[1], 10, 32)
	if err != nil || p < 0 || strconv.FormatInt(p, 10) != parts[1] || pk.TopicID == "" || metadata.ValidateTopicName(pk.Topic) != nil {
		return ParsedKey{}, false
	}
	pk.Partition = int32(p)
	name := parts[2]
	if name == "manifest.json" {
		pk.Kind = KeySnapshot
		return pk, true
	}
	stem, ok := strings.CutSuffix(name, ".seg")
	pk.Kind = KeySegment
	if !ok {
		if stem, ok = strings.CutSuffix(name, ".producers.json"); !ok {
			return ParsedKey{}, false
		}
		pk.Kind = KeyProducers
	}
	if !segmentStem(stem) {
		return ParsedKey{}, false
	}
	pk.Segment = PartitionPrefix(pk.Topic, pk.TopicID, pk.Partition) + stem + ".seg"
	return pk, true
}

// segmentStem checks <base:020d>-<last:020d>-e<epoch>[-c<nonce:08x>].
func segmentStem(s string) bool {
	f := strings.Split(s, "-")
	if len(f) != 3 && len(f) != 4 {
		return false
	}
	if !digits(f[0], 20) || !digits(f[1], 20) || f[1] < f[0] || len(f[2]) < 2 || f[2][0] != 'e' || !digits(f[2][1:], 0) {
		return false
	}
	return len(f) == 3 || len(f[3]) == 9 && f[3][0] == 'c' && hexDigits(f[3][1:], 8)
}

// digits reports whether s is n decimal digits (n = 0: 1 to 19 of them,
// without a leading zero unless it is "0").
func digits(s string, n int) bool {
	if n > 0 && len(s) != n || n == 0 && (s == "" || len(s) > 19 || len(s) > 1 && s[0] == '0') {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func hexDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
