package tiering

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering/objstore"
)

// randomObject uploads a segment of incompressible records (~12 MiB, a
// dozen 1 MiB frames) and returns its entry and records.
func randomObject(t *testing.T, s objstore.Store) (metadata.SegmentEntry, map[int64]string) {
	t.Helper()
	var batches []byte
	off := int64(0)
	for range 12 * 64 {
		recs := make([]segment.Record, 16)
		for i := range recs {
			v := make([]byte, 1024)
			_, _ = rand.Read(v)
			recs[i] = segment.Record{Timestamp: 1764158400000, Value: v}
		}
		b := segment.AppendBatch(nil, segment.NoProducer, recs)
		segment.SetBaseOffset(b, off)
		off += 16
		batches = append(batches, b...)
	}
	obj, e, err := EncodeSegment(SegmentUpload{Topic: "c", Partition: 0, Epoch: 1, Batches: batches})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), e.Key, obj); err != nil {
		t.Fatal(err)
	}
	return e, records(t, batches)
}

// readAll reads e sequentially, maxBytes per read, and checks every record.
func readAll(t *testing.T, r *Reader, e metadata.SegmentEntry, want map[int64]string, maxBytes int) {
	t.Helper()
	got := 0
	for next := e.BaseOffset; next <= e.LastOffset; {
		b, n, err := r.Read(context.Background(), e, next, maxBytes)
		if err != nil {
			t.Fatalf("read at %d: %v", next, err)
		}
		for o, v := range records(t, b) {
			if o >= next {
				if want[o] != v {
					t.Fatalf("offset %d differs", o)
				}
				got++
			}
		}
		next = n
	}
	if got != len(want) {
		t.Fatalf("read %d records, want %d", got, len(want))
	}
}

// waitReadAhead waits (at most 10 s) until no read-ahead fetch of r is in
// flight, so that GETs counted after it are the reads' own.
func waitReadAhead(t *testing.T, r *Reader) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(r.prefetch) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("read-ahead still running after 10s")
		}
	}
}

func TestCachedSequentialRead(t *testing.T) {
	store := objstore.NewFaulty(objstore.NewMem())
	e, want := randomObject(t, store)
	cache, err := NewFrameCache(t.TempDir(), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(store, ReaderConfig{Cache: cache, WindowBytes: 4 << 20})
	readAll(t, r, e, want, 1<<20)
	waitReadAhead(t, r)
	// ~12.6 MiB in 4 MiB windows: 4 GETs of frames (+2 for the footer);
	// a window a read-ahead races with may be split in two, so at most 8
	// for frames - and never one per frame (12).
	gets := store.Calls(objstore.OpGetRange)
	if gets > 2+8 {
		t.Fatalf("%d range GETs for a sequential read of %d bytes in 4 MiB windows", gets, e.Size)
	}
	// A second read is served from the cache.
	readAll(t, r, e, want, 1<<20)
	if again := store.Calls(objstore.OpGetRange) - gets; again != 0 {
		t.Fatalf("re-reading a cached object took %d GETs", again)
	}
	// A damaged cache file is a miss, not a data error.
	name := frameName(e.Key, 3)
	if err := os.WriteFile(filepath.Join(cache.dir, name), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	readAll(t, r, e, want, 1<<20)
}

// TestTinyCache: a cache smaller than one frame still serves every read,
// with one GET per read and no read-ahead.
func TestTinyCache(t *testing.T) {
	store := objstore.NewFaulty(objstore.NewMem())
	e, want := randomObject(t, store)
	cache, err := NewFrameCache(t.TempDir(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(store, ReaderConfig{Cache: cache, WindowBytes: 4 << 20})
	if _, err := r.Footer(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	before := store.Calls(objstore.OpGetRange)
	reads := 0
	for next := e.BaseOffset; next <= e.LastOffset; reads++ {
		_, n, err := r.Read(context.Background(), e, next, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		next = n
	}
	if gets := store.Calls(objstore.OpGetRange) - before; gets != reads {
		t.Fatalf("%d GETs for %d reads with a tiny cache", gets, reads)
	}
	if size, _, _ := cache.Stats(); size > 1000 {
		t.Fatalf("cache holds %d bytes, limit 1000", size)
	}
	readAll(t, r, e, want, 4<<20)
}

// TestConcurrentReadersFetchOnce: readers of the same frames at the same
// time share one GET.
func TestConcurrentReadersFetchOnce(t *testing.T) {
	store := objstore.NewFaulty(objstore.NewMem())
	e, want := randomObject(t, store)
	r := NewReader(store, ReaderConfig{WindowBytes: 4 << 20})
	if _, err := r.Footer(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	store.SetLatency(100 * time.Millisecond)
	before := store.Calls(objstore.OpGetRange)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _, err := r.Read(context.Background(), e, 0, 1<<20)
			if err == nil && records(t, b)[0] != want[0] {
				t.Error("wrong data")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if gets := store.Calls(objstore.OpGetRange) - before; gets != 1 {
		t.Fatalf("8 concurrent readers of one window made %d GETs", gets)
	}
}
