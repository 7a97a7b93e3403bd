package segment

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/strata-stream/strata/internal/pagecache"
)

// residentPages is how many of the file's pages are in the page cache.
func residentPages(t *testing.T, path string) int {
	t.Helper()
	n, _, err := pagecache.Resident(path)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// DropCache empties a sealed segment's pages from the page cache (Linux,
// where the file name limits this test to; in a directory from
// pagecache.DiskDir, not tmpfs) and leaves its data as it was;
// the active segment is refused.
func TestDropCacheEvictsSealedSegmentPages(t *testing.T) {
	dir := pagecache.DiskDir(t)
	l := openTest(t, Config{Dir: dir, SegmentBytes: 1 << 20, SyncPolicy: SyncAlways})
	for i := 0; len(l.Segments()) < 2; i++ {
		if _, _, err := l.Append(testBatch(i, 8, 4000, 1)); err != nil {
			t.Fatal(err)
		}
	}
	_, end := l.Offsets()
	if err := l.Sync(t.Context(), end); err != nil { // the rolled segment sealed too
		t.Fatal(err)
	}
	// The syncer finishes the seal (index files) just after the data.
	segs := l.Segments()
	for deadline := time.Now().Add(5 * time.Second); segs[0].Active && time.Now().Before(deadline); segs = l.Segments() {
		time.Sleep(time.Millisecond)
	}
	sealed, active := segs[0], segs[len(segs)-1]
	if sealed.Active {
		t.Fatalf("segment %d still unsealed 5 s after Sync", sealed.BaseOffset)
	}
	want, err := l.ReadSegment(sealed.BaseOffset)
	if err != nil {
		t.Fatal(err)
	}
	before := residentPages(t, sealed.Path)
	if min := int(sealed.Size) / os.Getpagesize() / 2; before < min {
		t.Fatalf("only %d pages of the just-written segment are cached, want at least %d", before, min)
	}
	if err := l.DropCache(sealed.BaseOffset); err != nil {
		t.Fatal(err)
	}
	if after := residentPages(t, sealed.Path); after != 0 {
		t.Fatalf("%d of %d pages still cached after DropCache", after, before)
	}
	got, err := l.ReadSegment(sealed.BaseOffset)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadSegment after DropCache: %d bytes (%v), want the same %d", len(got), err, len(want))
	}
	if err := l.DropCache(active.BaseOffset); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("DropCache of the active segment: %v, want ErrOutOfRange", err)
	}
}
