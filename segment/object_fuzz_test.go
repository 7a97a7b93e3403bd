package segment

import (
	"testing"
)

func seedObject() []byte {
	obj, _, err := EncodeObject(nil, ObjectMeta{Topic: "fuzz", Partition: 1}, objectBatches(8, 3, 100, false), ObjectOptions{FrameSize: 1 << 10})
	if err != nil {
		panic(err)
	}
	return obj
}

// FuzzDecodeFooter: arbitrary footer bytes never panic, and an accepted
// footer is self-consistent.
func FuzzDecodeFooter(f *testing.F) {
	obj := seedObject()
	n, _ := ParseTrailer(obj)
	footer := obj[len(obj)-TrailerSize-n : len(obj)-TrailerSize]
	f.Add(footer)
	f.Add(footer[:len(footer)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ft, err := DecodeFooter(b)
		if err != nil {
			return
		}
		var pos int64
		for i, fr := range ft.Frames {
			if fr.Position != pos || fr.LastOffset < fr.FirstOffset || (i > 0 && fr.FirstOffset != ft.Frames[i-1].LastOffset+1) {
				t.Fatalf("accepted inconsistent frame %d: %+v", i, fr)
			}
			pos += fr.StoredLen
		}
		if ft.Frames[0].FirstOffset != ft.BaseOffset || ft.Frames[len(ft.Frames)-1].LastOffset != ft.LastOffset {
			t.Fatalf("frames do not span [%d, %d]", ft.BaseOffset, ft.LastOffset)
		}
	})
}

// FuzzDecodeObject: arbitrary objects never panic, and every batch an
// accepted object yields passes its CRC and lies in the footer's range.
func FuzzDecodeObject(f *testing.F) {
	obj := seedObject()
	f.Add(obj)
	f.Add(obj[len(obj)/2:])
	bad := append([]byte(nil), obj...)
	bad[10] ^= 0xff
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		ft, batches, err := DecodeObject(b)
		if err != nil {
			return
		}
		if err := ForEachBatch(batches, func(h BatchHeader, _ []byte) error {
			if h.BaseOffset < ft.BaseOffset || h.LastOffset() > ft.LastOffset {
				t.Fatalf("batch [%d, %d] outside object [%d, %d]", h.BaseOffset, h.LastOffset(), ft.BaseOffset, ft.LastOffset)
			}
			return nil
		}); err != nil {
			t.Fatalf("accepted object yields invalid batches: %v", err)
		}
	})
}
