package tiering

import (
	"bytes"
	"errors"
	"testing"
)

func walSections() []WALSection {
	return []WALSection{
		{Topic: "a", TopicID: "x1", Partition: 0, Epoch: 3, Batches: segmentBatches(100, 3)},
		{Topic: "b", TopicID: "x2", Partition: 5, Epoch: 1, Batches: segmentBatches(0, 1)},
	}
}

func TestWALRoundTrip(t *testing.T) {
	obj, idx, err := EncodeWAL(7, walSections())
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeWAL(obj)
	if err != nil {
		t.Fatal(err)
	}
	if got.BrokerID != 7 || len(got.Entries) != 2 {
		t.Fatalf("decoded index %+v", got)
	}
	for i, e := range got.Entries {
		if e != idx.Entries[i] {
			t.Fatalf("entry %d: decoded %+v, encoded %+v", i, e, idx.Entries[i])
		}
		b, err := WALSectionBatches(obj[e.Pos:e.Pos+e.Len], e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, walSections()[i].Batches) {
			t.Fatalf("section %d differs", i)
		}
	}
	if e := got.Entries[0]; e.BaseOffset != 100 || e.LastOffset != 129 || e.Epoch != 3 {
		t.Fatalf("entry 0 = %+v, want offsets [100, 129] at epoch 3", e)
	}
}

func TestWALRefusesBadInput(t *testing.T) {
	gap := append(segmentBatches(0, 1), segmentBatches(20, 1)...) // offsets 0-9 then 20-29
	if _, _, err := EncodeWAL(1, []WALSection{{Topic: "a", Batches: gap}}); err == nil {
		t.Fatal("EncodeWAL accepted batches with an offset gap")
	}
	if _, _, err := EncodeWAL(1, []WALSection{{Topic: "a", Batches: segmentBatches(0, 1)[:50]}}); err == nil {
		t.Fatal("EncodeWAL accepted a torn batch")
	}
	obj, idx, err := EncodeWAL(7, walSections())
	if err != nil {
		t.Fatal(err)
	}
	// Every single flipped byte is detected, by the whole-object decoder
	// and, inside a section, by the section check a reader does.
	for i := range obj {
		bad := bytes.Clone(obj)
		bad[i] ^= 0x40
		if _, err := DecodeWAL(bad); err == nil {
			t.Fatalf("flipped byte %d of %d: DecodeWAL accepted it", i, len(obj))
		} else if !errors.Is(err, ErrCorruptWAL) {
			t.Fatalf("flipped byte %d: error %v does not wrap ErrCorruptWAL", i, err)
		}
		for _, e := range idx.Entries {
			if int64(i) >= e.Pos && int64(i) < e.Pos+e.Len {
				if _, err := WALSectionBatches(bad[e.Pos:e.Pos+e.Len], e); err == nil {
					t.Fatalf("flipped byte %d: section check accepted it", i)
				}
			}
		}
	}
	for _, n := range []int{0, 1, len(obj) / 2, len(obj) - 1} {
		if _, err := DecodeWAL(obj[:n]); err == nil {
			t.Fatalf("DecodeWAL accepted the first %d bytes of %d", n, len(obj))
		}
	}
}

func FuzzDecodeWAL(f *testing.F) {
	obj, _, err := EncodeWAL(7, walSections())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(obj)
	f.Add([]byte(WALMagic))
	f.Add(obj[len(obj)-40:])
	f.Fuzz(func(t *testing.T, b []byte) {
		idx, err := DecodeWAL(b)
		if err != nil {
			return
		}
		// Whatever decodes has sections that pass the reader's check.
		for _, e := range idx.Entries {
			if _, err := WALSectionBatches(b[e.Pos:e.Pos+e.Len], e); err != nil {
				t.Fatalf("DecodeWAL accepted an object whose section %+v fails: %v", e, err)
			}
		}
	})
}
