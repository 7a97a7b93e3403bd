package segment

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestRecordBodySize: the computed size of a record is what kmsg encodes
// after the length, for values on both sides of every varint width, nil
// and empty keys and values, negative deltas and headers.
func TestRecordBodySize(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, 64, -64, -65, 8191, 8192, 1 << 20, -(1 << 20), math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64} {
		if got, want := varintSize(v), len(binary.AppendVarint(nil, v)); got != want {
			t.Errorf("varintSize(%d) = %d, want %d", v, got, want)
		}
	}
	sizes := []int{-1, 0, 1, 63, 64, 65, 8191, 8192, 100_000}
	bytesOf := func(n int) []byte {
		if n < 0 {
			return nil
		}
		return make([]byte, n)
	}
	for _, k := range sizes {
		for _, v := range sizes {
			for _, ts := range []int64{0, -5, 1 << 40} {
				for _, hs := range [][]kmsg.Header{nil, {{Key: "k", Value: nil}, {Key: string(make([]byte, 70)), Value: bytesOf(200)}}} {
					kr := kmsg.Record{TimestampDelta64: ts, OffsetDelta: int32(k + v + 1000), Key: bytesOf(k), Value: bytesOf(v), Headers: hs}
					want := len(kr.AppendTo(nil)) - 1 // Length 0 is one byte
					if got := recordBodySize(&kr); got != want {
						t.Fatalf("key %d, value %d, ts %d, %d headers: size %d, want %d", k, v, ts, len(hs), got, want)
					}
				}
			}
		}
	}
	// And the batch decodes to what went in.
	recs := []Record{{Timestamp: 10, Key: nil, Value: make([]byte, 200)}, {Timestamp: 5, Key: []byte{}, Value: nil, Headers: []RecordHeader{{Key: "h", Value: []byte("v")}}}}
	b := AppendBatch(nil, NoProducer, recs)
	var got []Record
	if err := BatchRecords(b, func(r Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != nil || len(got[0].Value) != 200 || got[1].Key == nil || got[1].Value != nil || got[1].Headers[0].Key != "h" || got[1].Timestamp != 5 {
		t.Fatalf("decoded %+v", got)
	}
}
