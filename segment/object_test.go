package segment

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// objectBatches builds n contiguous batches; random values make them
// incompressible, repeated ones compressible.
func objectBatches(n, recs, valueSize int, random bool) []byte {
	r := rand.New(rand.NewPCG(uint64(n), uint64(valueSize)))
	var out []byte
	next := int64(0)
	for i := range n {
		rs := make([]Record, recs)
		for j := range rs {
			v := bytes.Repeat([]byte("strata "), valueSize/7+1)[:valueSize]
			if random {
				for k := range v {
					v[k] = byte(r.Uint32())
				}
			}
			rs[j] = Record{Timestamp: int64(1000 + i), Key: []byte{byte(j)}, Value: v}
		}
		b := AppendBatch(nil, NoProducer, rs)
		SetBaseOffset(b, next)
		next += int64(recs)
		out = append(out, b...)
	}
	return out
}

func TestObjectRoundTrip(t *testing.T) {
	meta := ObjectMeta{Topic: "orders", Partition: 3, LeaderEpoch: 7}
	for _, tc := range []struct {
		name      string
		batches   []byte
		frameSize int
		wantCodec int // -1: any
	}{
		{"one batch", objectBatches(1, 1, 10, false), 0, -1},
		{"many compressible", objectBatches(300, 10, 500, false), 64 << 10, FrameZstd},
		{"random is stored raw", objectBatches(50, 4, 1000, true), 16 << 10, FrameRaw},
		{"batch larger than a frame", objectBatches(5, 20, 2000, false), 1 << 10, FrameZstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj, f, err := EncodeObject(nil, meta, tc.batches, ObjectOptions{FrameSize: tc.frameSize})
			if err != nil {
				t.Fatal(err)
			}
			for _, fr := range f.Frames {
				if tc.wantCodec >= 0 && int(fr.Codec) != tc.wantCodec {
					t.Fatalf("frame codec %d, want %d", fr.Codec, tc.wantCodec)
				}
			}
			if tc.frameSize > 0 && len(tc.batches) > 4*tc.frameSize && len(f.Frames) < 2 {
				t.Fatalf("%d frames for %d bytes at frame size %d", len(f.Frames), len(tc.batches), tc.frameSize)
			}
			f2, got, err := DecodeObject(obj)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.batches) {
				t.Fatal("decoded batches differ")
			}
			if f2.Meta != meta || f2.BaseOffset != 0 || f2.LastOffset != f.LastOffset || len(f2.Frames) != len(f.Frames) {
				t.Fatalf("footer %+v, want %+v", f2, f)
			}
			// Decoding each frame range alone gives its slice of batches.
			var joined []byte
			for i := range f2.Frames {
				s, e := f2.ByteRange(i, i)
				raw, err := DecodeFrame(f2, i, obj[s:e])
				if err != nil {
					t.Fatal(err)
				}
				joined = append(joined, raw...)
			}
			if !bytes.Equal(joined, tc.batches) {
				t.Fatal("frames decoded one by one differ")
			}
		})
	}
}

func TestObjectIsDeterministic(t *testing.T) {
	b := objectBatches(200, 8, 300, false)
	meta := ObjectMeta{Topic: "t", Partition: 1, LeaderEpoch: 2}
	a, _, err := EncodeObject(nil, meta, b, ObjectOptions{FrameSize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c, _, err := EncodeObject(nil, meta, append([]byte(nil), b...), ObjectOptions{FrameSize: 32 << 10})
		if err != nil || !bytes.Equal(a, c) {
			t.Fatalf("encoding the same input twice gave different bytes (%v)", err)
		}
	}
}

func TestFramesFor(t *testing.T) {
	b := objectBatches(100, 10, 200, false) // offsets 0..999
	_, f, err := EncodeObject(nil, ObjectMeta{Topic: "t"}, b, ObjectOptions{FrameSize: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Frames) < 3 {
		t.Fatalf("want several frames, got %d", len(f.Frames))
	}
	for _, off := range []int64{0, 1, f.Frames[1].FirstOffset - 1, f.Frames[1].FirstOffset, f.Frames[1].LastOffset, 999} {
		first, last, ok := f.FramesFor(off, off)
		if !ok || first != last || f.Frames[first].FirstOffset > off || f.Frames[first].LastOffset < off {
			t.Fatalf("FramesFor(%d) = %d..%d %v", off, first, last, ok)
		}
	}
	if first, last, ok := f.FramesFor(0, 999); !ok || first != 0 || last != len(f.Frames)-1 {
		t.Fatalf("FramesFor(all) = %d..%d", first, last)
	}
	if _, _, ok := f.FramesFor(1000, 2000); ok {
		t.Fatal("FramesFor beyond the object found a frame")
	}
}

func TestObjectRejectsBadInput(t *testing.T) {
	good := objectBatches(3, 2, 10, false)
	gap := append(append([]byte(nil), good...), objectBatches(1, 1, 10, false)...) // offset 0 again
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-1] ^= 1
	for name, b := range map[string][]byte{"empty": nil, "crc": flipped, "offset gap": gap, "torn": good[:len(good)-3]} {
		if _, _, err := EncodeObject(nil, ObjectMeta{}, b, ObjectOptions{}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: EncodeObject err = %v, want ErrCorrupt", name, err)
		}
	}
}

// TestObjectDamageIsDetected flips bytes all over an object and cuts it
// short: decoding must fail with ErrCorrupt, never return other batches.
func TestObjectDamageIsDetected(t *testing.T) {
	batches := objectBatches(60, 5, 300, false)
	obj, _, err := EncodeObject(nil, ObjectMeta{Topic: "t"}, batches, ObjectOptions{FrameSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	step := max(1, len(obj)/1500)
	for pos := 0; pos < len(obj); pos += step {
		for _, mask := range []byte{0x01, 0x80} {
			bad := append([]byte(nil), obj...)
			bad[pos] ^= mask
			_, got, err := DecodeObject(bad)
			if err == nil {
				if !bytes.Equal(got, batches) {
					t.Fatalf("byte %d flipped: decoded different batches without an error", pos)
				}
				t.Fatalf("byte %d flipped: damage went unnoticed", pos)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d flipped: error %v does not wrap ErrCorrupt", pos, err)
			}
		}
	}
	for _, n := range []int{0, 5, TrailerSize, len(obj) / 2, len(obj) - 1} {
		if _, _, err := DecodeObject(obj[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("object cut to %d bytes: %v", n, err)
		}
	}
}
