package broker

import (
	"bytes"
	"testing"
	"time"

	"github.com/strata-stream/strata/internal/pagecache"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering/objstore"
)

// TestUploadedPagesLeaveThePageCache: an uploaded sealed segment that lies
// wholly outside the partition's newest PageCacheWindow bytes is dropped
// from the page cache, and still reads back whole; the segments inside
// the window stay cached, and with a negative window all of them do.
// Linux only, by the file's name (where the page cache can be read and
// dropped); the data directory comes from pagecache.DiskDir (not tmpfs).
func TestUploadedPagesLeaveThePageCache(t *testing.T) {
	const segBytes = 64 << 10
	for _, window := range []int64{3 * segBytes, -1} {
		name := map[bool]string{false: "window", true: "never"}[window < 0]
		t.Run(name, func(t *testing.T) {
			b := startBroker(t, func(c *Config) {
				c.Objects = objstore.NewMem()
				c.UploadInterval = 50 * time.Millisecond
				c.PageCacheWindow = window
				c.DataDir = pagecache.DiskDir(t)
			})
			b.createTopic(t, "pages", 1, map[string]string{"segment.bytes": "65536", "max.message.bytes": "16384"})
			// About 640 KiB: some nine sealed segments. The records are
			// recent, so retention.ms does not evict them once uploaded.
			value := bytes.Repeat([]byte("p"), 8000)
			for i := 0; i < 80; i++ {
				if r := b.sendBatch(t, "pages", segment.AppendBatch(nil, segment.NoProducer, []segment.Record{{Timestamp: time.Now().UnixMilli(), Value: value}})); r.GetError() != nil {
					t.Fatal(r.GetError())
				}
			}
			p, err := b.srv.partition("pages", 0)
			if err != nil {
				t.Fatal(err)
			}
			segs := p.log.Segments()
			lastSealed := segs[len(segs)-2]
			// outside[i]: segment i lies wholly outside the window.
			outside := make([]bool, len(segs))
			var newer int64
			for i := len(segs) - 1; i >= 0; i-- {
				outside[i] = window >= 0 && newer >= window
				newer += segs[i].Size
			}
			resident := func(i int) (int, int) {
				n, pages, err := pagecache.Resident(segs[i].Path)
				if err != nil {
					t.Fatal(err)
				}
				return n, pages
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				done := p.remoteEnd() >= lastSealed.NextOffset
				for i := range segs[:len(segs)-1] {
					if n, _ := resident(i); outside[i] && n > 0 {
						done = false
					}
				}
				if done {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("within 20 s: uploaded up to %d of %d, or a segment outside the window still cached", p.remoteEnd(), lastSealed.NextOffset)
				}
				time.Sleep(20 * time.Millisecond)
			}
			kept := 0
			for i := range segs[:len(segs)-1] {
				if n, pages := resident(i); !outside[i] {
					if n < pages/2 {
						t.Fatalf("segment %d (inside the window) has %d of %d pages cached, want most", segs[i].BaseOffset, n, pages)
					}
					kept++
				}
			}
			if window >= 0 && (kept == 0 || kept == len(segs)-1) {
				t.Fatalf("%d of %d sealed segments inside the window: the test does not split them", kept, len(segs)-1)
			}
			first := segs[0]
			got := b.consumeRange(t, "pages", 0, first.BaseOffset, first.NextOffset)
			if c := bytes.Count(got, value); c != int(first.NextOffset-first.BaseOffset) {
				t.Fatalf("segment %d reads back %d records, want %d", first.BaseOffset, c, first.NextOffset-first.BaseOffset)
			}
		})
	}
}
