package tiering

import (
	"encoding/json"
	"fmt"
	"strings"
)

// A producer snapshot is written beside a sealed segment object that holds
// batches of idempotent producers: every producer's state (epoch, last
// sequence, its most recent batches) as of the segment's end. A new leader
// starts from the snapshot of the last uploaded segment and replays the
// tail after it, so the deduplication of retried batches survives a
// failover.

// ProducerSnapshot is the state of a partition's idempotent producers as
// of offset End.
type ProducerSnapshot struct {
	Version   int             `json:"version"`
	End       int64           `json:"end"`
	Producers []ProducerState `json:"producers"`
}

// ProducerState is one producer's state.
type ProducerState struct {
	ID      int64           `json:"id"`
	Epoch   int16           `json:"epoch"`
	LastSeq int32           `json:"last_seq"`
	Recent  []ProducerBatch `json:"recent"`
}

// ProducerBatch is one of a producer's recent batches: its sequences and
// offsets.
type ProducerBatch struct {
	FirstSeq int32 `json:"first_seq"`
	LastSeq  int32 `json:"last_seq"`
	Base     int64 `json:"base"`
	Last     int64 `json:"last"`
}

// ProducerSnapshotKey is the key of the producer snapshot of the segment
// object segmentKey.
func ProducerSnapshotKey(segmentKey string) string {
	return strings.TrimSuffix(segmentKey, ".seg") + ".producers.json"
}

// EncodeProducerSnapshot renders a snapshot.
func EncodeProducerSnapshot(s ProducerSnapshot) ([]byte, error) {
	s.Version = 1
	return json.Marshal(s)
}

// DecodeProducerSnapshot parses a snapshot and checks it: version,
// producer ids, sequences and offsets that are ordered and end before End.
func DecodeProducerSnapshot(b []byte) (ProducerSnapshot, error) {
	var s ProducerSnapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("tiering: decode producer snapshot: %w", err)
	}
	if s.Version != 1 {
		return s, fmt.Errorf("tiering: producer snapshot version %d not supported", s.Version)
	}
	seen := map[int64]bool{}
	for _, p := range s.Producers {
		if p.ID < 0 || seen[p.ID] || p.Epoch < 0 || len(p.Recent) == 0 {
			return s, fmt.Errorf("tiering: producer snapshot: producer %d is malformed or repeated", p.ID)
		}
		seen[p.ID] = true
		for i, r := range p.Recent {
			if r.FirstSeq < 0 || r.LastSeq < r.FirstSeq || r.Base < 0 || r.Last < r.Base || r.Last >= s.End ||
				(i > 0 && (r.Base <= p.Recent[i-1].Last || r.FirstSeq <= p.Recent[i-1].LastSeq)) {
				return s, fmt.Errorf("tiering: producer snapshot: batch %d of producer %d is malformed or out of order", i, p.ID)
			}
		}
		if p.Recent[len(p.Recent)-1].LastSeq != p.LastSeq {
			return s, fmt.Errorf("tiering: producer snapshot: producer %d's last sequence %d is not its last batch's", p.ID, p.LastSeq)
		}
	}
	return s, nil
}
