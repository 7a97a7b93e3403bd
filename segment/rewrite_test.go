package segment

import (
	"bytes"
	"fmt"
	"testing"
)

// TestRebuildBatch: a batch rebuilt from some of its records keeps their
// offsets, timestamps, keys, values and headers, and the header fields
// compaction must keep (base offset, epoch, producer, first sequence);
// it is CRC-valid and may stretch over dropped offsets after it.
func TestRebuildBatch(t *testing.T) {
	recs := []Record{
		{Timestamp: 100, Key: []byte("a"), Value: []byte("1")},
		{Timestamp: 105, Key: []byte("b"), Value: nil, Headers: []RecordHeader{{Key: "h", Value: []byte("v")}}},
		{Timestamp: 110, Key: []byte("a"), Value: []byte("2")},
		{Timestamp: 120, Key: []byte("c"), Value: []byte{}},
	}
	orig := AppendBatch(nil, BatchOptions{ProducerID: 7, ProducerEpoch: 3, BaseSequence: 40}, recs)
	SetBaseOffset(orig, 1000)
	SetPartitionLeaderEpoch(orig, 5)
	var keep [][]byte
	var want []Record
	err := ForEachRecord(orig, func(r Record, raw []byte) error {
		if r.Offset == 1001 || r.Offset == 1002 {
			keep = append(keep, raw)
			want = append(want, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := RebuildBatch([]byte("prefix"), orig, keep, 9, 110)
	if string(out[:6]) != "prefix" {
		t.Fatal("dst prefix lost")
	}
	b := out[6:]
	h, err := ValidateBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	oh, _ := ValidateBatch(orig)
	if h.Size() != len(b) || h.NumRecords != 2 || h.LastOffsetDelta != 9 || h.MaxTimestamp != 110 {
		t.Fatalf("rebuilt header %+v (size %d)", h, len(b))
	}
	if h.BaseOffset != 1000 || h.PartitionLeaderEpoch != 5 || h.ProducerID != 7 || h.ProducerEpoch != 3 ||
		h.FirstSequence != 40 || h.FirstTimestamp != oh.FirstTimestamp || h.Attributes != oh.Attributes {
		t.Fatalf("rebuilt header %+v lost fields of %+v", h, oh)
	}
	var got []Record
	if err := BatchRecords(b, func(r Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	if got[0].Value != nil {
		t.Fatalf("a null value (tombstone) became %q", got[0].Value)
	}
}

// TestSetLastOffsetDelta: stretching a batch keeps it valid and its
// records unchanged.
func TestSetLastOffsetDelta(t *testing.T) {
	b := testBatch(1, 3, 20, 50)
	before := bytes.Clone(b[BatchHeaderSize:])
	SetLastOffsetDelta(b, 100)
	h, err := ValidateBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.LastOffsetDelta != 100 || h.NextOffset() != 101 || !bytes.Equal(b[BatchHeaderSize:], before) {
		t.Fatalf("stretched header %+v", h)
	}
	// A stretched, gapped run of batches still forms a sealed object.
	b2 := testBatch(2, 1, 20, 60)
	SetBaseOffset(b2, 101)
	obj, f, err := EncodeObject(nil, ObjectMeta{Topic: "t"}, append(bytes.Clone(b), b2...), ObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.BaseOffset != 0 || f.LastOffset != 101 || f.Records != 4 {
		t.Fatalf("footer %+v", f)
	}
	if _, _, err := DecodeObject(obj); err != nil {
		t.Fatal(err)
	}
}

// FuzzRebuildBatch feeds arbitrary bytes to ForEachRecord and rebuilds
// every batch it accepts from every other record: the result must be a
// valid batch holding exactly those records.
func FuzzRebuildBatch(f *testing.F) {
	for _, b := range seedBatches() {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ValidateBatch(b)
		if err != nil {
			return
		}
		b = b[:h.Size()]
		var keep [][]byte
		var want []int64
		maxTS := h.FirstTimestamp
		i := 0
		err = ForEachRecord(b, func(r Record, raw []byte) error {
			if i%2 == 0 {
				keep = append(keep, raw)
				want = append(want, r.Offset)
				maxTS = max(maxTS, r.Timestamp)
			}
			i++
			return nil
		})
		if err != nil || len(keep) == 0 {
			return
		}
		out := RebuildBatch(nil, b, keep, h.LastOffsetDelta, maxTS)
		oh, err := ValidateBatch(out)
		if err != nil {
			t.Fatalf("rebuilt batch does not validate: %v", err)
		}
		if oh.Size() != len(out) || int(oh.NumRecords) != len(keep) {
			t.Fatalf("rebuilt batch header %+v, %d bytes, %d records kept", oh, len(out), len(keep))
		}
		var got []int64
		if err := BatchRecords(out, func(r Record) error { got = append(got, r.Offset); return nil }); err != nil {
			t.Fatalf("rebuilt batch does not decode: %v", err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("rebuilt offsets %v, want %v", got, want)
		}
	})
}
