package tiering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering/objstore"
)

// segmentBatches builds a sealed segment's bytes: n batches of 10 records
// from offset base, each record a recognisable value.
func segmentBatches(base int64, n int) []byte {
	var out []byte
	off := base
	for range n {
		recs := make([]segment.Record, 10)
		for i := range recs {
			recs[i] = segment.Record{Timestamp: 1764158400000 + off, Value: fmt.Appendf(nil, "value-%08d-%s", off, bytes.Repeat([]byte("x"), 200))}
			off++
		}
		b := segment.AppendBatch(nil, segment.NoProducer, recs)
		segment.SetBaseOffset(b, off-10)
		out = append(out, b...)
	}
	return out
}

func upload(t *testing.T, s objstore.Store, base int64, n int) (metadata.SegmentEntry, []byte) {
	t.Helper()
	batches := segmentBatches(base, n)
	obj, e, err := EncodeSegment(SegmentUpload{Topic: "t", TopicID: "abc", Partition: 3, Epoch: 7, Batches: batches})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), e.Key, obj); err != nil {
		t.Fatal(err)
	}
	return e, batches
}

// records decodes batches into offset → value, checking offsets ascend.
func records(t *testing.T, b []byte) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	err := segment.ForEachBatch(b, func(_ segment.BatchHeader, raw []byte) error {
		return segment.BatchRecords(raw, func(r segment.Record) error {
			out[r.Offset] = string(r.Value)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEncodeAndRead(t *testing.T) {
	store := objstore.NewFaulty(objstore.NewMem())
	// 600 batches of ~2.3 KiB: a few 1 MiB frames.
	e, batches := upload(t, store, 1000, 600)
	if e.BaseOffset != 1000 || e.LastOffset != 6999 || e.Records != 6000 || e.Key != "topics/t.abc/3/00000000000000001000-00000000000000006999-e7.seg" {
		t.Fatalf("entry %+v", e)
	}
	want := records(t, batches)
	r := NewReader(store, ReaderConfig{})
	ctx := context.Background()
	// Sequential read from the start, 1 MiB at a time, covers everything.
	got := map[int64]string{}
	for next := e.BaseOffset; next <= e.LastOffset; {
		before := store.Calls(objstore.OpGetRange)
		b, n, err := r.Read(ctx, e, next, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if calls := store.Calls(objstore.OpGetRange) - before; calls != 1 && next != e.BaseOffset {
			t.Fatalf("a read after the footer is cached took %d range GETs, want 1", calls)
		}
		if n <= next {
			t.Fatalf("no progress at %d", next)
		}
		for o, v := range records(t, b) {
			got[o] = v
		}
		next = n
	}
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for o, v := range want {
		if got[o] != v {
			t.Fatalf("offset %d: got %q", o, got[o])
		}
	}
	// A read from the middle starts at the frame holding the offset.
	b, _, err := r.Read(ctx, e, 5000, 1)
	if err != nil {
		t.Fatal(err)
	}
	mid := records(t, b)
	if _, ok := mid[5000]; !ok {
		t.Fatal("read from 5000 does not hold 5000")
	}
	if len(b) > 2<<20 {
		t.Fatalf("read of 1 byte fetched %d bytes: more than one frame", len(b))
	}
}

func TestCorruptObjectIsNeverServed(t *testing.T) {
	ctx := context.Background()
	for _, where := range []string{"frame", "footer", "trailer"} {
		t.Run(where, func(t *testing.T) {
			store := objstore.NewMem()
			e, _ := upload(t, store, 0, 300)
			obj, _ := store.Get(ctx, e.Key)
			switch where {
			case "frame":
				obj[100] ^= 0x40
			case "footer":
				obj[len(obj)-40] ^= 0x01
			case "trailer":
				obj[len(obj)-1] ^= 0x01
			}
			if err := store.Put(ctx, e.Key, obj); err != nil {
				t.Fatal(err)
			}
			b, _, err := NewReader(store, ReaderConfig{}).Read(ctx, e, 0, 1<<20)
			if !errors.Is(err, ErrCorruptObject) || b != nil {
				t.Fatalf("read of an object with a damaged %s: %d bytes, %v; want ErrCorruptObject and nothing", where, len(b), err)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(e.Key)) {
				t.Fatalf("error does not name the object: %v", err)
			}
		})
	}
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	f := objstore.NewFaulty(objstore.NewMem())
	f.SlowDown(objstore.OpPut, 3)
	retries := 0
	err := Retry(ctx, time.Millisecond, func() error { return f.Put(ctx, "k", []byte("v")) }, func(int, error) { retries++ })
	if err != nil || retries != 3 {
		t.Fatalf("Retry: %v after %d retries, want success after 3", err, retries)
	}
	// Not retriable: returned at once.
	calls := 0
	err = Retry(ctx, time.Millisecond, func() error { calls++; return objstore.ErrInvalidKey }, nil)
	if !errors.Is(err, objstore.ErrInvalidKey) || calls != 1 {
		t.Fatalf("non-retriable: %v after %d calls", err, calls)
	}
	// An outage outlasting ctx: the context's error and the last failure.
	f.SetDown(true)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = Retry(cctx, time.Millisecond, func() error { return f.Put(cctx, "k", []byte("v")) }, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("outage: %v", err)
	}
}

func TestSnapshot(t *testing.T) {
	s := Snapshot{Topic: "t", TopicID: "abc", Partition: 1, Segments: []metadata.SegmentEntry{
		{Key: "b", BaseOffset: 100, LastOffset: 199}, {Key: "a", BaseOffset: 0, LastOffset: 99},
	}}
	b, err := EncodeSnapshot(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSnapshot(b)
	if err != nil || len(got.Segments) != 2 || got.Segments[0].Key != "a" || got.Topic != "t" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{`{"version":2}`, `{"version":1,"segments":[{"key":"a","base_offset":5,"last_offset":1}]}`,
		`{"version":1,"segments":[{"key":"a","base_offset":0,"last_offset":10},{"key":"b","base_offset":10,"last_offset":20}]}`, `{`} {
		if _, err := DecodeSnapshot([]byte(bad)); err == nil {
			t.Errorf("DecodeSnapshot(%s) accepted", bad)
		}
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	good, _ := EncodeSnapshot(Snapshot{Topic: "t", Segments: []metadata.SegmentEntry{{Key: "a", BaseOffset: 0, LastOffset: 9}, {Key: "b", BaseOffset: 10, LastOffset: 19}}})
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSnapshot(b)
		if err != nil {
			return
		}
		for i, e := range s.Segments {
			if e.LastOffset < e.BaseOffset || (i > 0 && e.BaseOffset <= s.Segments[i-1].LastOffset) {
				t.Fatalf("accepted a malformed snapshot: %+v", s.Segments)
			}
		}
	})
}

// TestReadEntryBeforeItsObject: a manifest entry may start before its
// object's first batch (compaction emptied those offsets); a read there
// serves the object from its first batch. An entry that claims less than
// its object holds, or ends elsewhere, is a corrupt object.
func TestReadEntryBeforeItsObject(t *testing.T) {
	store := objstore.NewMem()
	e, batches := upload(t, store, 1000, 5)
	r := NewReader(store, ReaderConfig{})
	defer r.Close()
	ctx := context.Background()
	wide := e
	wide.BaseOffset = 900
	b, next, err := r.Read(ctx, wide, 900, 1<<20)
	if err != nil || next != e.LastOffset+1 || !bytes.Equal(b, batches) {
		t.Fatalf("read at 900 of an entry from 900 whose object starts at 1000: %d bytes, next %d, %v", len(b), next, err)
	}
	for _, bad := range []metadata.SegmentEntry{{Key: e.Key, BaseOffset: 1010, LastOffset: e.LastOffset, Size: e.Size}, {Key: e.Key, BaseOffset: 1000, LastOffset: e.LastOffset + 1, Size: e.Size}} {
		r := NewReader(store, ReaderConfig{})
		if _, _, err := r.Read(ctx, bad, 1010, 1<<20); !errors.Is(err, ErrCorruptObject) {
			t.Errorf("entry [%d, %d] of an object [%d, %d]: %v, want ErrCorruptObject", bad.BaseOffset, bad.LastOffset, e.BaseOffset, e.LastOffset, err)
		}
		r.Close()
	}
}
