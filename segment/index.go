package segment

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// A segment's sparse indexes. An entry is added for the batch that starts
// once IndexIntervalBytes have been written since the previous entry, so
// the two files always have the same number of entries, naming the same
// batches:
//
//	.index      entries of 8 bytes:  relative offset u32, position u32
//	.timeindex  entries of 12 bytes: max timestamp before the batch i64, relative offset u32
//
// "max timestamp before the batch" is the largest MaxTimestamp of every batch
// of the segment that precedes the entry's batch (math.MinInt64 for none), so
// timestamps never decrease along the file. Both files are hints: they are
// written without fsync and validated (and rebuilt from the log when
// damaged) on open.
const (
	offsetEntrySize = 8
	timeEntrySize   = 12
)

// indexEntry is one entry of both indexes.
type indexEntry struct {
	rel      uint32 // base offset of the batch minus the segment base
	pos      uint32 // byte position of the batch in the segment file
	tsBefore int64  // max timestamp of the batches before this one
}

func appendOffsetEntry(dst []byte, e indexEntry) []byte {
	dst = binary.BigEndian.AppendUint32(dst, e.rel)
	return binary.BigEndian.AppendUint32(dst, e.pos)
}

func appendTimeEntry(dst []byte, e indexEntry) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.tsBefore))
	return binary.BigEndian.AppendUint32(dst, e.rel)
}

// DecodeIndexes decodes and cross-checks a segment's offset index and time
// index against the size of its log file. Both must be whole entries, name
// the same batches in the same order, have strictly increasing relative
// offsets and positions below logSize, and non-decreasing timestamps. Any
// violation returns an error wrapping ErrCorrupt; the caller then rebuilds
// the indexes from the log.
func DecodeIndexes(offsetIdx, timeIdx []byte, logSize int64) ([]indexEntry, error) {
	if len(offsetIdx)%offsetEntrySize != 0 {
		return nil, fmt.Errorf("%w: offset index of %d bytes is not whole entries", ErrCorrupt, len(offsetIdx))
	}
	if len(timeIdx)%timeEntrySize != 0 {
		return nil, fmt.Errorf("%w: time index of %d bytes is not whole entries", ErrCorrupt, len(timeIdx))
	}
	n := len(offsetIdx) / offsetEntrySize
	if len(timeIdx)/timeEntrySize != n {
		return nil, fmt.Errorf("%w: offset index has %d entries, time index %d", ErrCorrupt, n, len(timeIdx)/timeEntrySize)
	}
	entries := make([]indexEntry, 0, n)
	for i := range n {
		e := indexEntry{
			rel:      binary.BigEndian.Uint32(offsetIdx[i*offsetEntrySize:]),
			pos:      binary.BigEndian.Uint32(offsetIdx[i*offsetEntrySize+4:]),
			tsBefore: int64(binary.BigEndian.Uint64(timeIdx[i*timeEntrySize:])),
		}
		if trel := binary.BigEndian.Uint32(timeIdx[i*timeEntrySize+8:]); trel != e.rel {
			return nil, fmt.Errorf("%w: index entry %d: offset index names +%d, time index +%d", ErrCorrupt, i, e.rel, trel)
		}
		if int64(e.pos) >= logSize {
			return nil, fmt.Errorf("%w: index entry %d: position %d beyond log size %d", ErrCorrupt, i, e.pos, logSize)
		}
		if i > 0 {
			p := entries[i-1]
			if e.rel <= p.rel || e.pos <= p.pos || e.tsBefore < p.tsBefore {
				return nil, fmt.Errorf("%w: index entry %d out of order", ErrCorrupt, i)
			}
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// floorByOffset returns the index of the last entry whose batch starts at
// or below rel, or -1.
func floorByOffset(entries []indexEntry, rel uint32) int {
	return sort.Search(len(entries), func(i int) bool { return entries[i].rel > rel }) - 1
}

// floorByTime returns the index of the last entry before which every batch
// has a max timestamp below ts, or -1: the first batch with a max timestamp
// at or above ts starts at or after that entry.
func floorByTime(entries []indexEntry, ts int64) int {
	return sort.Search(len(entries), func(i int) bool { return entries[i].tsBefore >= ts }) - 1
}

// relOffset converts an absolute offset within a segment to the index's
// 32-bit relative form; ok is false when it does not fit.
func relOffset(base, offset int64) (uint32, bool) {
	d := offset - base
	if d < 0 || d > math.MaxUint32 {
		return 0, false
	}
	return uint32(d), true
}
