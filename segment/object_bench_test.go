package segment

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchValue is a 1 KiB record value, 25 % random bytes and 75 % JSON-like
// text with varying fields: the payload the seal targets are set for.
func benchValue(r *rand.Rand) []byte {
	v := make([]byte, 0, 1024)
	for range 256 {
		v = append(v, byte(r.Uint32()))
	}
	for len(v) < 1024 {
		v = fmt.Appendf(v, `{"ts":%d,"service":"checkout","level":"info","user":"u-%05d","order":%d,"amount":%d.%02d,"currency":"EUR","region":"eu-west-1"},`,
			1_700_000_000_000+r.IntN(1_000_000), r.IntN(100_000), r.IntN(1_000_000), r.IntN(500), r.IntN(100))
	}
	return v[:1024]
}

// benchSegment is a segment of 16 KiB batches of 1 KiB records.
func benchSegment(size int) []byte {
	r := rand.New(rand.NewPCG(7, 7))
	var out []byte
	next := int64(0)
	for len(out) < size {
		recs := make([]Record, 16)
		for i := range recs {
			recs[i] = Record{Timestamp: 1_700_000_000_000 + next, Key: []byte(fmt.Sprintf("user-%d", r.IntN(1000))), Value: benchValue(r)}
		}
		b := AppendBatch(nil, NoProducer, recs)
		SetBaseOffset(b, next)
		next += 16
		out = append(out, b...)
	}
	return out
}

// BenchmarkSeal encodes a 16 MiB segment into a sealed object (one core).
func BenchmarkSeal(b *testing.B) {
	seg := benchSegment(16 << 20)
	meta := ObjectMeta{Topic: "bench", Partition: 0}
	var obj []byte
	b.SetBytes(int64(len(seg)))
	for b.Loop() {
		var err error
		obj, _, err = EncodeObject(obj[:0], meta, seg, ObjectOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(seg))/float64(len(obj)), "ratio")
}

// BenchmarkUnseal decodes a sealed 16 MiB segment back to its batches,
// checking every frame and batch CRC.
func BenchmarkUnseal(b *testing.B) {
	seg := benchSegment(16 << 20)
	obj, _, err := EncodeObject(nil, ObjectMeta{Topic: "bench"}, seg, ObjectOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(seg)))
	for b.Loop() {
		if _, _, err := DecodeObject(obj); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(seg))/float64(len(obj)), "ratio")
}
