package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"iter"
	"math/bits"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka RecordBatch v2 layout (big endian). Offsets are byte positions in
// the batch; the CRC covers everything from attrsPos to the end.
const (
	// BatchHeaderSize is the size of a RecordBatch v2 header, before the records.
	BatchHeaderSize = 61

	baseOffsetPos  = 0
	lengthPos      = 8
	leaderEpochPos = 12
	magicPos       = 16
	crcPos         = 17
	attrsPos       = 21
	lastDeltaPos   = 23
	firstTSPos     = 27
	maxTSPos       = 35
	producerIDPos  = 43
	producerEpPos  = 51
	firstSeqPos    = 53
	numRecordsPos  = 57

	// batchLengthOverhead is the part of the header counted by the length
	// field's own definition: everything after the length field.
	batchLengthOverhead = BatchHeaderSize - 12

	// Magic is the only RecordBatch version Strata stores.
	Magic = 2

	// MaxBatchSize bounds a single batch; larger length fields are treated as
	// corruption rather than as a reason to allocate.
	MaxBatchSize = 64 << 20

	// compressionMask selects the compression codec bits of the attributes.
	compressionMask = 0x07
	// controlBit marks control batches (transaction markers).
	controlBit = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C is the CRC-32C (Castagnoli) of b, the checksum of batches, frames
// and footers.
func CRC32C(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// BatchHeader is the decoded fixed-size header of a RecordBatch v2. It holds
// no reference to the batch bytes.
type BatchHeader struct {
	BaseOffset           int64
	Length               int32 // bytes after the length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	FirstSequence        int32
	NumRecords           int32
}

// Size is the total size of the batch in bytes, header included.
func (h BatchHeader) Size() int { return int(h.Length) + 12 }

// LastOffset is the offset of the batch's last record.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset that follows the batch.
func (h BatchHeader) NextOffset() int64 { return h.LastOffset() + 1 }

// Compression returns the codec bits of the attributes (0 = none).
func (h BatchHeader) Compression() int { return int(h.Attributes & compressionMask) }

// IsControl reports whether the batch is a control batch.
func (h BatchHeader) IsControl() bool { return h.Attributes&controlBit != 0 }

// PeekBatchSize returns the total size of the batch that starts at b, read
// from its length field, without validating anything else. It returns
// ErrShortBatch when b holds fewer than 12 bytes and ErrCorrupt when the
// length field is impossible.
func PeekBatchSize(b []byte) (int, error) {
	if len(b) < 12 {
		return 0, ErrShortBatch
	}
	n := int32(binary.BigEndian.Uint32(b[lengthPos:]))
	if n < batchLengthOverhead || n > MaxBatchSize {
		return 0, fmt.Errorf("%w: batch length field %d", ErrCorrupt, n)
	}
	return int(n) + 12, nil
}

// ParseBatchHeader decodes the header of the batch at the start of b and
// checks everything that can be checked without the records: the length,
// the magic byte, the record count and offset delta. It does not verify the
// CRC; see ValidateBatch. b may hold more than one batch.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	size, err := PeekBatchSize(b)
	if err != nil {
		return BatchHeader{}, err
	}
	if len(b) < BatchHeaderSize {
		return BatchHeader{}, ErrShortBatch
	}
	h := BatchHeader{
		BaseOffset:           int64(binary.BigEndian.Uint64(b[baseOffsetPos:])),
		Length:               int32(binary.BigEndian.Uint32(b[lengthPos:])),
		PartitionLeaderEpoch: int32(binary.BigEndian.Uint32(b[leaderEpochPos:])),
		Magic:                int8(b[magicPos]),
		CRC:                  binary.BigEndian.Uint32(b[crcPos:]),
		Attributes:           int16(binary.BigEndian.Uint16(b[attrsPos:])),
		LastOffsetDelta:      int32(binary.BigEndian.Uint32(b[lastDeltaPos:])),
		FirstTimestamp:       int64(binary.BigEndian.Uint64(b[firstTSPos:])),
		MaxTimestamp:         int64(binary.BigEndian.Uint64(b[maxTSPos:])),
		ProducerID:           int64(binary.BigEndian.Uint64(b[producerIDPos:])),
		ProducerEpoch:        int16(binary.BigEndian.Uint16(b[producerEpPos:])),
		FirstSequence:        int32(binary.BigEndian.Uint32(b[firstSeqPos:])),
		NumRecords:           int32(binary.BigEndian.Uint32(b[numRecordsPos:])),
	}
	switch {
	case h.Magic != Magic:
		return h, fmt.Errorf("%w: magic %d, want %d", ErrCorrupt, h.Magic, Magic)
	case h.NumRecords <= 0:
		return h, fmt.Errorf("%w: batch with %d records", ErrCorrupt, h.NumRecords)
	case h.LastOffsetDelta < 0:
		return h, fmt.Errorf("%w: negative last offset delta %d", ErrCorrupt, h.LastOffsetDelta)
	case h.BaseOffset < 0:
		return h, fmt.Errorf("%w: negative base offset %d", ErrCorrupt, h.BaseOffset)
	case h.Compression() == 0 && int64(h.NumRecords) > int64(h.LastOffsetDelta)+1:
		return h, fmt.Errorf("%w: %d records in %d offsets", ErrCorrupt, h.NumRecords, int64(h.LastOffsetDelta)+1)
	}
	_ = size
	return h, nil
}

// ValidateBatch parses the header of the batch at the start of b and
// verifies its CRC-32C. It returns the header and the batch's size; b may
// hold more bytes after the batch. Errors wrap ErrShortBatch when b is cut
// short and ErrCorrupt otherwise.
func ValidateBatch(b []byte) (BatchHeader, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return h, err
	}
	if len(b) < h.Size() {
		return h, ErrShortBatch
	}
	if got := CRC32C(b[attrsPos:h.Size()]); got != h.CRC {
		return h, fmt.Errorf("%w: batch at offset %d: crc %08x, want %08x", ErrCorrupt, h.BaseOffset, got, h.CRC)
	}
	return h, nil
}

// CheckedBatch is one RecordBatch whose header parsed and whose CRC-32C
// held when CheckBatch returned it: Log.AppendChecked writes it without
// computing the CRC again. It aliases the bytes given to CheckBatch; the
// fields outside the CRC (base offset, leader epoch) may still be set.
type CheckedBatch struct {
	b []byte
	h BatchHeader
}

// CheckBatch validates the batch at the start of b as ValidateBatch does
// and returns it (b[:its size]; b may hold more bytes after it).
func CheckBatch(b []byte) (CheckedBatch, error) {
	h, err := ValidateBatch(b)
	if err != nil {
		return CheckedBatch{}, err
	}
	return CheckedBatch{b: b[:h.Size()], h: h}, nil
}

// Bytes is the batch.
func (c CheckedBatch) Bytes() []byte { return c.b }

// Header is the batch's header as it was checked.
func (c CheckedBatch) Header() BatchHeader { return c.h }

// SetBaseOffset rewrites the base offset of the batch at the start of b. The
// base offset is outside the CRC, so the batch stays valid.
func SetBaseOffset(b []byte, base int64) {
	binary.BigEndian.PutUint64(b[baseOffsetPos:], uint64(base))
}

// SetPartitionLeaderEpoch rewrites the leader epoch of the batch at the start
// of b. The field is outside the CRC.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[leaderEpochPos:], uint32(epoch))
}

// Record is one record of a batch, as a producer gives it and a consumer
// receives it. Slices returned by decoding alias the batch bytes.
type Record struct {
	Offset    int64
	Timestamp int64 // milliseconds since the Unix epoch
	Key       []byte
	Value     []byte
	Headers   []RecordHeader
}

// RecordHeader is a record header.
type RecordHeader struct {
	Key   string
	Value []byte
}

// BatchOptions are the producer fields of a new batch.
type BatchOptions struct {
	ProducerID    int64 // -1 when the producer is not idempotent
	ProducerEpoch int16
	BaseSequence  int32 // -1 when not idempotent
}

// NoProducer is the BatchOptions of a producer that is not idempotent.
var NoProducer = BatchOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}

// AppendBatch encodes records as an uncompressed RecordBatch v2 with base
// offset 0 and appends it to dst. Record offsets are assigned in order from
// 0; record timestamps are used as given (a zero timestamp stays zero).
// records must not be empty.
func AppendBatch(dst []byte, opts BatchOptions, records []Record) []byte {
	if len(records) == 0 {
		panic("segment: AppendBatch with no records")
	}
	first, maxTS := records[0].Timestamp, records[0].Timestamp
	for _, r := range records[1:] {
		first = min(first, r.Timestamp)
		maxTS = max(maxTS, r.Timestamp)
	}
	start := len(dst)
	dst = append(dst, make([]byte, BatchHeaderSize)...)
	for i, r := range records {
		kr := kmsg.Record{
			TimestampDelta64: r.Timestamp - first,
			OffsetDelta:      int32(i),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		// kmsg writes Length as given.
		kr.Length = int32(recordBodySize(&kr))
		dst = kr.AppendTo(dst)
	}
	kb := kmsg.RecordBatch{
		FirstOffset:          0,
		Length:               int32(len(dst) - start - 12),
		PartitionLeaderEpoch: -1,
		Magic:                Magic,
		LastOffsetDelta:      int32(len(records) - 1),
		FirstTimestamp:       first,
		MaxTimestamp:         maxTS,
		ProducerID:           opts.ProducerID,
		ProducerEpoch:        opts.ProducerEpoch,
		FirstSequence:        opts.BaseSequence,
		NumRecords:           int32(len(records)),
	}
	kb.AppendTo(dst[start:start])
	binary.BigEndian.PutUint32(dst[start+crcPos:], CRC32C(dst[start+attrsPos:]))
	return dst
}

// recordBodySize is the size of kr as kmsg.Record.AppendTo encodes it,
// after its length: attributes, the timestamp and offset deltas, key and
// value (nil is length -1), and the headers.
func recordBodySize(kr *kmsg.Record) int {
	n := 1 + varintSize(kr.TimestampDelta64) + varintSize(int64(kr.OffsetDelta)) +
		nullableBytesSize(kr.Key) + nullableBytesSize(kr.Value) + varintSize(int64(len(kr.Headers)))
	for _, h := range kr.Headers {
		n += varintSize(int64(len(h.Key))) + len(h.Key) + nullableBytesSize(h.Value)
	}
	return n
}

func nullableBytesSize(b []byte) int {
	if b == nil {
		return varintSize(-1)
	}
	return varintSize(int64(len(b))) + len(b)
}

// varintSize is the length of v as a zigzag varint (Kafka's varint and
// varlong, and encoding/binary's Varint).
func varintSize(v int64) int {
	return (bits.Len64((uint64(v)<<1^uint64(v>>63))|1) + 6) / 7
}

// BatchRecords decodes the records of one uncompressed, CRC-checked batch b
// (exactly one batch) and calls fn for each. It returns ErrCorrupt when a
// record does not decode and ErrUnsupported for compressed batches. Slices
// in the records alias b.
func BatchRecords(b []byte, fn func(Record) error) error {
	return ForEachRecord(b, func(r Record, _ []byte) error { return fn(r) })
}

// ForEachRecord is BatchRecords that also gives each record's encoded
// bytes (its length prefix included), which alias b: a batch rebuilt from
// some of them (RebuildBatch) holds those records unchanged.
func ForEachRecord(b []byte, fn func(r Record, raw []byte) error) error {
	h, err := ValidateBatch(b)
	if err != nil {
		return err
	}
	if h.Compression() != 0 {
		return fmt.Errorf("%w: compressed batch (codec %d)", ErrUnsupported, h.Compression())
	}
	body := b[BatchHeaderSize:h.Size()]
	for i := int32(0); i < h.NumRecords; i++ {
		n, w := binary.Varint(body)
		if w <= 0 || n < 0 || int64(len(body)-w) < n {
			return fmt.Errorf("%w: record %d of batch %d: bad length", ErrCorrupt, i, h.BaseOffset)
		}
		raw := body[:w+int(n)]
		var kr kmsg.Record
		if err := kr.UnsafeReadFrom(raw); err != nil {
			return fmt.Errorf("%w: record %d of batch %d: %v", ErrCorrupt, i, h.BaseOffset, err)
		}
		if kr.OffsetDelta < 0 || kr.OffsetDelta > h.LastOffsetDelta {
			return fmt.Errorf("%w: record %d of batch %d: offset delta %d", ErrCorrupt, i, h.BaseOffset, kr.OffsetDelta)
		}
		body = body[len(raw):]
		r := Record{
			Offset:    h.BaseOffset + int64(kr.OffsetDelta),
			Timestamp: h.FirstTimestamp + kr.TimestampDelta64,
			Key:       kr.Key,
			Value:     kr.Value,
		}
		for _, hd := range kr.Headers {
			r.Headers = append(r.Headers, RecordHeader{Key: hd.Key, Value: hd.Value})
		}
		if err := fn(r, raw); err != nil {
			return err
		}
	}
	if len(body) != 0 {
		return fmt.Errorf("%w: batch %d: %d trailing bytes after %d records", ErrCorrupt, h.BaseOffset, len(body), h.NumRecords)
	}
	return nil
}

// Batches yields the header and bytes of each of the concatenated batches
// in b, which were checked already (no CRC here): for walking a read or an
// object's batches cheaply. It stops at the first header that does not
// parse or a batch that does not fit.
func Batches(b []byte) iter.Seq2[BatchHeader, []byte] {
	return func(yield func(BatchHeader, []byte) bool) {
		for len(b) > 0 {
			h, err := ParseBatchHeader(b)
			if err != nil || h.Size() > len(b) || !yield(h, b[:h.Size()]) {
				return
			}
			b = b[h.Size():]
		}
	}
}

// ForEachBatch walks the concatenated batches in b, validating each (CRC
// included), and calls fn with each batch's header and bytes. It stops at
// the first invalid batch and returns its error; a trailing partial batch
// yields ErrShortBatch.
func ForEachBatch(b []byte, fn func(h BatchHeader, batch []byte) error) error {
	for len(b) > 0 {
		h, err := ValidateBatch(b)
		if err != nil {
			return err
		}
		if err := fn(h, b[:h.Size()]); err != nil {
			return err
		}
		b = b[h.Size():]
	}
	return nil
}
