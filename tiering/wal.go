package tiering

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/segment"
)

// A WAL object carries the newest record batches of many partitions, as
// one broker appended them within one flush interval:
//
//	[section 0][section 1]...[index JSON][index length u32][index CRC-32C u32]["STRATAW1"]
//
// Each section is the raw (uncompressed, CRC-checked) record batches of
// one partition; the index lists the sections (metadata.WALEntry, the
// same entries the commit in etcd records). A reader of one partition
// fetches only its section with a range GET.

// WALMagic ends every WAL object.
const WALMagic = "STRATAW1"

const walTrailerSize = 4 + 4 + len(WALMagic)

// ErrCorruptWAL is returned for a WAL object or section that fails its
// checks.
var ErrCorruptWAL = errors.New("tiering: corrupt WAL object")

// WALSection is one partition's batches for a WAL object.
type WALSection struct {
	Topic     string
	TopicID   string
	Partition int32
	Epoch     int64
	// Batches are whole record batches with contiguous offsets.
	Batches []byte
}

// WALIndex is the index at the end of a WAL object.
type WALIndex struct {
	Version  int                 `json:"version"`
	BrokerID int32               `json:"broker_id"`
	Entries  []metadata.WALEntry `json:"entries"`
}

// WALKey is the object key of a broker's WAL object number seq; nonce
// (random) keeps two objects apart should a broker ever reuse a seq (a
// clock stepped back across a restart).
func WALKey(broker int32, seq int64, nonce uint32) string {
	return fmt.Sprintf("wal/%010d/%020d-%08x.wal", broker, seq, nonce)
}

// EncodeWAL builds a WAL object of the sections and returns it with the
// index of its sections. A section whose batches are not whole, valid and
// contiguous is an error.
func EncodeWAL(broker int32, sections []WALSection) ([]byte, WALIndex, error) {
	idx := WALIndex{Version: 1, BrokerID: broker}
	size := walTrailerSize
	for _, s := range sections {
		size += len(s.Batches)
	}
	obj := make([]byte, 0, size+len(sections)*160)
	for _, s := range sections {
		base, last, err := batchRange(s.Batches)
		if err != nil {
			return nil, idx, fmt.Errorf("tiering: WAL section of %s/%d: %w", s.Topic, s.Partition, err)
		}
		idx.Entries = append(idx.Entries, metadata.WALEntry{
			Topic: s.Topic, TopicID: s.TopicID, Partition: s.Partition, Epoch: s.Epoch,
			BaseOffset: base, LastOffset: last, Pos: int64(len(obj)), Len: int64(len(s.Batches)),
			CRC: segment.CRC32C(s.Batches),
		})
		obj = append(obj, s.Batches...)
	}
	js, err := json.Marshal(idx)
	if err != nil {
		return nil, idx, err
	}
	obj = append(obj, js...)
	obj = binary.BigEndian.AppendUint32(obj, uint32(len(js)))
	obj = binary.BigEndian.AppendUint32(obj, segment.CRC32C(js))
	obj = append(obj, WALMagic...)
	return obj, idx, nil
}

// batchRange checks that b is whole, valid, contiguous batches and
// returns their first and last offsets.
func batchRange(b []byte) (base, last int64, err error) {
	base, next := int64(-1), int64(-1)
	err = segment.ForEachBatch(b, func(h segment.BatchHeader, _ []byte) error {
		if base < 0 {
			base = h.BaseOffset
		} else if h.BaseOffset != next {
			return fmt.Errorf("batch at offset %d follows one ending at %d", h.BaseOffset, next-1)
		}
		next = h.BaseOffset + int64(h.LastOffsetDelta) + 1
		return nil
	})
	if err == nil && base < 0 {
		err = errors.New("no batches")
	}
	return base, next - 1, err
}

// DecodeWAL checks a whole WAL object (index, every section's CRC and
// batches) and returns its index.
func DecodeWAL(obj []byte) (WALIndex, error) {
	var idx WALIndex
	if len(obj) < walTrailerSize || string(obj[len(obj)-len(WALMagic):]) != WALMagic {
		return idx, fmt.Errorf("%w: no trailer", ErrCorruptWAL)
	}
	t := obj[len(obj)-walTrailerSize:]
	n, sum := binary.BigEndian.Uint32(t), binary.BigEndian.Uint32(t[4:])
	if int64(n) > int64(len(obj)-walTrailerSize) {
		return idx, fmt.Errorf("%w: index of %d bytes in an object of %d", ErrCorruptWAL, n, len(obj))
	}
	dataEnd := len(obj) - walTrailerSize - int(n)
	js := obj[dataEnd : len(obj)-walTrailerSize]
	if segment.CRC32C(js) != sum {
		return idx, fmt.Errorf("%w: index CRC mismatch", ErrCorruptWAL)
	}
	if err := json.Unmarshal(js, &idx); err != nil {
		return idx, fmt.Errorf("%w: index: %v", ErrCorruptWAL, err)
	}
	if idx.Version != 1 {
		return idx, fmt.Errorf("%w: version %d", ErrCorruptWAL, idx.Version)
	}
	for _, e := range idx.Entries {
		if e.Pos < 0 || e.Len < 0 || e.Pos > int64(dataEnd) || e.Len > int64(dataEnd)-e.Pos {
			return idx, fmt.Errorf("%w: section of %s/%d at [%d, +%d) outside the data (%d bytes)", ErrCorruptWAL, e.Topic, e.Partition, e.Pos, e.Len, dataEnd)
		}
		if _, err := WALSectionBatches(obj[e.Pos:e.Pos+e.Len], e); err != nil {
			return idx, err
		}
	}
	return idx, nil
}

// WALSectionBatches checks a section read from a WAL object against its
// entry (length, CRC, batches whole, valid and exactly covering the
// entry's offsets) and returns its batches.
func WALSectionBatches(section []byte, e metadata.WALEntry) ([]byte, error) {
	if int64(len(section)) != e.Len {
		return nil, fmt.Errorf("%w: section of %s/%d is %d bytes, want %d", ErrCorruptWAL, e.Topic, e.Partition, len(section), e.Len)
	}
	if segment.CRC32C(section) != e.CRC {
		return nil, fmt.Errorf("%w: section of %s/%d [%d, %d] fails its CRC", ErrCorruptWAL, e.Topic, e.Partition, e.BaseOffset, e.LastOffset)
	}
	base, last, err := batchRange(section)
	if err != nil {
		return nil, fmt.Errorf("%w: section of %s/%d: %v", ErrCorruptWAL, e.Topic, e.Partition, err)
	}
	if base != e.BaseOffset || last != e.LastOffset {
		return nil, fmt.Errorf("%w: section of %s/%d holds [%d, %d], its entry says [%d, %d]", ErrCorruptWAL, e.Topic, e.Partition, base, last, e.BaseOffset, e.LastOffset)
	}
	return section, nil
}
