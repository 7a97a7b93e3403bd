package tiering

import (
	"testing"
)

func TestProducerSnapshotRoundTrip(t *testing.T) {
	in := ProducerSnapshot{End: 100, Producers: []ProducerState{
		{ID: 7, Epoch: 0, LastSeq: 9, Recent: []ProducerBatch{{FirstSeq: 0, LastSeq: 4, Base: 10, Last: 14}, {FirstSeq: 5, LastSeq: 9, Base: 50, Last: 54}}},
	}}
	b, err := EncodeProducerSnapshot(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeProducerSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.End != 100 || len(out.Producers) != 1 || out.Producers[0].Recent[1] != in.Producers[0].Recent[1] {
		t.Fatalf("decoded %+v", out)
	}
	for _, bad := range []string{
		`{"version":2,"end":1,"producers":[]}`,
		`{"version":1,"end":10,"producers":[{"id":1,"last_seq":0,"recent":[{"first_seq":0,"last_seq":0,"base":10,"last":10}]}]}`, // beyond end
		`{"version":1,"end":99,"producers":[{"id":1,"last_seq":3,"recent":[{"first_seq":0,"last_seq":0,"base":1,"last":1}]}]}`,   // last seq mismatch
		`{"version":1,"end":99,"producers":[{"id":1,"last_seq":0,"recent":[]}]}`,
		`{"version":1,"end":99,"producers":[{"id":1,"last_seq":1,"recent":[{"first_seq":1,"last_seq":1,"base":5,"last":5},{"first_seq":1,"last_seq":1,"base":6,"last":6}]}]}`,
		`not json`,
	} {
		if _, err := DecodeProducerSnapshot([]byte(bad)); err == nil {
			t.Errorf("DecodeProducerSnapshot accepted %s", bad)
		}
	}
}

func FuzzDecodeProducerSnapshot(f *testing.F) {
	b, _ := EncodeProducerSnapshot(ProducerSnapshot{End: 100, Producers: []ProducerState{
		{ID: 7, LastSeq: 9, Recent: []ProducerBatch{{FirstSeq: 0, LastSeq: 4, Base: 10, Last: 14}, {FirstSeq: 5, LastSeq: 9, Base: 50, Last: 54}}},
	}})
	f.Add(b)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeProducerSnapshot(b)
		if err != nil {
			return
		}
		// What decodes re-encodes and decodes to the same thing.
		again, err := EncodeProducerSnapshot(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeProducerSnapshot(again); err != nil {
			t.Fatalf("re-encoded snapshot fails: %v", err)
		}
	})
}
