package segment

import (
	"encoding/binary"
	"math"
)

// Rewriting batches for compaction. A compacted batch keeps its base
// offset, leader epoch, attributes, first timestamp and producer fields,
// and the encoded bytes of the records it keeps; only the record count,
// the length, the last offset delta (which may grow to cover offsets
// whose records were dropped after it: offsets keep their gaps, as in
// Kafka), the max timestamp and the CRC change.

// RebuildBatch appends to dst a copy of orig (one whole, CRC-valid,
// uncompressed batch) that holds only records: encoded records of orig
// (from ForEachRecord), in their order, at least one. The copy's last
// offset delta is lastOffsetDelta (at least that of its last record) and
// its max timestamp is maxTimestamp. The result is a valid batch.
func RebuildBatch(dst, orig []byte, records [][]byte, lastOffsetDelta int32, maxTimestamp int64) []byte {
	start := len(dst)
	dst = append(dst, orig[:BatchHeaderSize]...)
	for _, r := range records {
		dst = append(dst, r...)
	}
	b := dst[start:]
	binary.BigEndian.PutUint32(b[lengthPos:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[numRecordsPos:], uint32(len(records)))
	binary.BigEndian.PutUint32(b[lastDeltaPos:], uint32(lastOffsetDelta))
	binary.BigEndian.PutUint64(b[maxTSPos:], uint64(maxTimestamp))
	binary.BigEndian.PutUint32(b[crcPos:], CRC32C(b[attrsPos:]))
	return dst
}

// SetLastOffsetDelta rewrites the last offset delta of the whole, valid
// batch b (exactly one) and its CRC: to stretch a batch over the offsets
// after it whose records compaction dropped. delta must not be below the
// batch's own.
func SetLastOffsetDelta(b []byte, delta int32) {
	size := int(binary.BigEndian.Uint32(b[lengthPos:])) + 12
	binary.BigEndian.PutUint32(b[lastDeltaPos:], uint32(delta))
	binary.BigEndian.PutUint32(b[crcPos:], CRC32C(b[attrsPos:size]))
}

// MaxOffsetDelta bounds how far one batch can stretch.
const MaxOffsetDelta = math.MaxInt32
