package objstore

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/strata-stream/strata/internal/pagecache"
)

// Put leaves none of the object in the page cache (each chunk is dropped
// once written back) and the object reads back whole. Linux only, by the
// file's name; in a directory from pagecache.DiskDir (not tmpfs).
func TestFilePutLeavesNoPagesCached(t *testing.T) {
	dir := pagecache.DiskDir(t)
	s, err := NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3*putChunk+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	ctx := context.Background()
	if err := s.Put(ctx, "t/0/obj", data); err != nil {
		t.Fatal(err)
	}
	p, err := s.path("t/0/obj")
	if err != nil {
		t.Fatal(err)
	}
	n, pages, err := pagecache.Resident(p)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d of the object's %d pages are cached after Put, want 0", n, pages)
	}
	got, err := s.Get(ctx, "t/0/obj")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after Put: %d bytes (%v), want the %d put", len(got), err, len(data))
	}
}
