package segment

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func seedBatches() [][]byte {
	b1 := testBatch(1, 3, 40, 100)
	b2 := AppendBatch(nil, BatchOptions{ProducerID: 9, ProducerEpoch: 2, BaseSequence: 5}, []Record{
		{Timestamp: 1, Key: nil, Value: nil, Headers: []RecordHeader{{Key: "a", Value: []byte("b")}}},
	})
	SetBaseOffset(b2, 3)
	return [][]byte{b1, b2, append(append([]byte(nil), b1...), b2...)}
}

// FuzzBatch feeds arbitrary bytes to the batch decoder. It must never panic,
// and whatever it accepts must pass its CRC and decode to records whose
// offsets lie inside the batch.
func FuzzBatch(f *testing.F) {
	for _, b := range seedBatches() {
		f.Add(b)
		f.Add(b[:len(b)/2])
		flipped := append([]byte(nil), b...)
		flipped[len(flipped)-3] ^= 0x40
		f.Add(flipped)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		err := ForEachBatch(b, func(h BatchHeader, batch []byte) error {
			if CRC32C(batch[attrsPos:]) != h.CRC {
				t.Fatalf("accepted a batch whose CRC fails")
			}
			if len(batch) != h.Size() {
				t.Fatalf("batch slice %d bytes, header says %d", len(batch), h.Size())
			}
			return BatchRecords(batch, func(r Record) error {
				if r.Offset < h.BaseOffset || r.Offset > h.LastOffset() {
					t.Fatalf("record offset %d outside batch [%d, %d]", r.Offset, h.BaseOffset, h.LastOffset())
				}
				return nil
			})
		})
		_ = err
	})
}

// FuzzIndexes feeds arbitrary index files to the index decoder: it must
// never panic, and what it accepts must satisfy the index invariants.
func FuzzIndexes(f *testing.F) {
	var ob, tb []byte
	for i := range 5 {
		e := indexEntry{rel: uint32(i * 10), pos: uint32(i * 4096), tsBefore: int64(i * 7)}
		ob, tb = appendOffsetEntry(ob, e), appendTimeEntry(tb, e)
	}
	f.Add(ob, tb, int64(1<<20))
	f.Add(ob, tb, int64(100))
	f.Add(ob[:12], tb, int64(1<<20))
	f.Add([]byte{}, []byte{}, int64(0))
	f.Fuzz(func(t *testing.T, ob, tb []byte, logSize int64) {
		entries, err := DecodeIndexes(ob, tb, logSize)
		if err != nil {
			return
		}
		if len(entries) != len(ob)/offsetEntrySize {
			t.Fatalf("%d entries from %d bytes", len(entries), len(ob))
		}
		for i, e := range entries {
			if int64(e.pos) >= logSize {
				t.Fatalf("entry %d position %d beyond %d", i, e.pos, logSize)
			}
			if i > 0 && (e.rel <= entries[i-1].rel || e.pos <= entries[i-1].pos || e.tsBefore < entries[i-1].tsBefore) {
				t.Fatalf("entry %d out of order", i)
			}
		}
	})
}

// FuzzRecovery opens a log whose segment file and index files hold
// arbitrary bytes. Open must not panic, and every batch the log then serves
// must pass its CRC and follow its predecessor.
func FuzzRecovery(f *testing.F) {
	var seg []byte
	for _, b := range seedBatches()[:2] {
		seg = append(seg, b...)
	}
	SetBaseOffset(seg, 0)
	f.Add(seg, []byte{}, []byte{})
	idx := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 3), uint32(len(seedBatches()[0])))
	tidx := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, 100), 3)
	f.Add(seg, idx, tidx)
	f.Add(seg[:len(seg)-5], idx, tidx)
	f.Add(bytes.Repeat([]byte{0xff}, 80), idx[:5], tidx)
	f.Fuzz(func(t *testing.T, seg, idx, tidx []byte) {
		fsys := NewMemFS()
		fsys.WriteFile("/f/"+SegmentFileName(0), seg)
		fsys.WriteFile("/f/00000000000000000000.index", idx)
		fsys.WriteFile("/f/00000000000000000000.timeindex", tidx)
		l, err := Open(Config{Dir: "/f", FS: fsys, SyncPolicy: SyncNever, Logger: quiet})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		_, end := l.Offsets()
		next := int64(0)
		for next < end {
			res, err := l.Read(next, 1<<20)
			if err != nil {
				t.Fatalf("Read(%d) after recovery: %v", next, err)
			}
			if err := ForEachBatch(res.Batches, func(h BatchHeader, _ []byte) error {
				if h.BaseOffset != next {
					t.Fatalf("batch at %d, want %d", h.BaseOffset, next)
				}
				next = h.NextOffset()
				return nil
			}); err != nil {
				t.Fatalf("served an invalid batch: %v", err)
			}
		}
	})
}
