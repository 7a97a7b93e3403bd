package broker

import (
	"bytes"
	"testing"
	"time"

	"github.com/strata-stream/strata/internal/pagecache"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering/objstore"
)

// TestUploadDropsSegmentPages: once a sealed segment has been read for
// upload, none of its pages are left in the page cache, and it still
// reads back whole; with KeepUploadedPages they stay. Linux only, by the
// file's name (where the page cache can be read and dropped).
func TestUploadDropsSegmentPages(t *testing.T) {
	for _, keep := range []bool{false, true} {
		name := map[bool]string{false: "default", true: "KeepUploadedPages"}[keep]
		t.Run(name, func(t *testing.T) {
			b := startBroker(t, func(c *Config) {
				c.Objects = objstore.NewMem()
				c.UploadInterval = 50 * time.Millisecond
				c.KeepUploadedPages = keep
			})
			b.createTopic(t, "pages", 1, map[string]string{"segment.bytes": "65536", "max.message.bytes": "16384"})
			value := bytes.Repeat([]byte("p"), 8000)
			// About 160 KiB: two sealed segments at least. The records are
			// recent, so retention.ms does not evict them once uploaded.
			for i := 0; i < 20; i++ {
				if r := b.sendBatch(t, "pages", segment.AppendBatch(nil, segment.NoProducer, []segment.Record{{Timestamp: time.Now().UnixMilli(), Value: value}})); r.GetError() != nil {
					t.Fatal(r.GetError())
				}
			}
			p, err := b.srv.partition("pages", 0)
			if err != nil {
				t.Fatal(err)
			}
			first := p.log.Segments()[0]
			deadline := time.Now().Add(20 * time.Second)
			for p.remoteEnd() < first.NextOffset {
				if time.Now().After(deadline) {
					t.Fatalf("segment %d not uploaded within 20 s", first.BaseOffset)
				}
				time.Sleep(20 * time.Millisecond)
			}
			n, pages, err := pagecache.Resident(first.Path)
			if err != nil {
				t.Fatal(err)
			}
			if keep && n < pages/2 {
				t.Fatalf("KeepUploadedPages: %d of the uploaded segment's %d pages cached, want most", n, pages)
			}
			if !keep && n != 0 {
				t.Fatalf("%d of the uploaded segment's %d pages still cached, want 0", n, pages)
			}
			got := b.consumeRange(t, "pages", 0, first.BaseOffset, first.NextOffset)
			if c := bytes.Count(got, value); c != int(first.NextOffset-first.BaseOffset) {
				t.Fatalf("the uploaded segment reads back %d records, want %d", c, first.NextOffset-first.BaseOffset)
			}
		})
	}
}
