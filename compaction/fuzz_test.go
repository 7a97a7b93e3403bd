package compaction

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/tiering/objstore"
)

// FuzzCompact derives a log from the input (keys, tombstones, old and new
// timestamps, records without a key, batch and segment sizes), compacts
// it, cut short at a swap the input picks and then whole, and checks the
// invariants: every record at its original offset; every key's last
// record its true latest, or nothing for an expired tombstone; no record
// without a key lost. Then more data comes and a run after every
// tombstone expired checks them again (no deleted key comes back).
func FuzzCompact(f *testing.F) {
	f.Add([]byte{3, 2, 1, 0, 5, 1, 5, 0, 7, 3, 1, 2, 9, 0})
	f.Add(bytes.Repeat([]byte{1, 0, 2, 1, 3, 2, 4, 4}, 20))
	f.Add([]byte{0, 0})
	f.Add([]byte{3, 0, 0, 2, 1, 0, 2, 0, 1, 1, 3, 0}) // a value and its tombstone in the log's last batch
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 || len(data) > 4000 {
			return
		}
		batchSize, perSeg, cut := 1+int(data[0]%7), 1+int(data[1]%5), int(data[2]%8)
		segBytes := []int64{200, 1 << 10, 64 << 10}[data[3]%3]
		now := time.UnixMilli(1_800_000_000_000)
		var recs []rec
		for i := 4; i+1 < len(data); i += 2 {
			k, flags := data[i]%16, data[i+1]
			r := rec{key: fmt.Appendf(nil, "k%d", k), value: fmt.Appendf(nil, "v%d", i), ts: now.UnixMilli()}
			if flags&1 != 0 {
				r.value = nil
			}
			if flags&2 != 0 {
				r.ts -= 2 * time.Hour.Milliseconds() // a tombstone past delete.retention.ms
			}
			if flags&0x1c == 0x1c {
				r.key = nil
			}
			recs = append(recs, r)
		}
		if len(recs) == 0 {
			return
		}
		store := objstore.NewMem()
		entries := uploadLog(t, store, recs, batchSize, perSeg)
		m := newManifest(entries)
		cfg := cfgFor(now)
		cfg.SegmentBytes = segBytes
		check := func(stage string) {
			got := readLog(t, store, m.list())
			lastOf := map[string]consumed{}
			keyless := 0
			for _, c := range got {
				if o := recs[c.offset]; !bytes.Equal(o.key, c.key) || !bytes.Equal(o.value, c.value) || (o.value == nil) != (c.value == nil) {
					t.Fatalf("%s: offset %d holds %q=%q, was %q=%q", stage, c.offset, c.key, c.value, o.key, o.value)
				}
				if c.key == nil {
					keyless++
				} else {
					lastOf[string(c.key)] = c
				}
			}
			want := 0
			for _, r := range recs {
				if r.key == nil {
					want++
				}
			}
			if keyless != want {
				t.Fatalf("%s: %d records without a key, want %d", stage, keyless, want)
			}
			lat := latest(recs)
			for i, r := range recs {
				if r.key == nil {
					continue
				}
				w := lat[string(r.key)].offset
				if int64(i) != w {
					continue
				}
				c, ok := lastOf[string(r.key)]
				if ok && c.offset != w || !ok && r.value != nil {
					t.Fatalf("%s: key %s ends at %d (present %v), its latest is at %d", stage, r.key, c.offset, ok, w)
				}
			}
		}
		m.failFrom = 1 + cut
		_, err := Run(context.Background(), cfg, entries, metadata.CompactionStatus{}, store, m)
		if err != nil && err != errCrash {
			t.Fatal(err)
		}
		check("cut short")
		m.failFrom = 0
		if _, err := Run(context.Background(), cfg, m.list(), m.status, store, m); err != nil {
			t.Fatal(err)
		}
		check("whole")
		// More data comes (a few keys written again, one of them
		// deleted), and a run after every tombstone's delete.retention.ms:
		// a key deleted before stays deleted.
		later := now.Add(3 * time.Hour)
		var more []rec
		for i := 5; i < len(data) && len(more) < 8; i += 7 {
			r := rec{key: fmt.Appendf(nil, "k%d", data[i]%16), value: fmt.Appendf(nil, "w%d", i), ts: later.UnixMilli()}
			if len(more) == 1 {
				r.value = nil
			}
			more = append(more, r)
		}
		for _, e := range uploadLogAt(t, store, int64(len(recs)), more, batchSize, perSeg) {
			m.entries[e.BaseOffset] = e
		}
		recs = append(recs, more...)
		cfg.Now = func() time.Time { return later }
		if _, err := Run(context.Background(), cfg, m.list(), m.status, store, m); err != nil {
			t.Fatal(err)
		}
		check("after more data")
	})
}
