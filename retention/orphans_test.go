package retention

import (
	"fmt"
	"testing"
	"time"

	"github.com/strata-stream/strata/tiering"
	"github.com/strata-stream/strata/tiering/objstore"
)

func TestOrphans(t *testing.T) {
	now := time.Unix(10_000, 0)
	old, young := now.Add(-time.Hour), now.Add(-time.Second)
	live := tiering.ObjectKey("orders", "aaaa", 0, 0, 9, 1)
	liveCompacted := tiering.CompactedObjectKey("orders", "aaaa", 0, 10, 19, 2, 1)
	uncommitted := tiering.CompactedObjectKey("orders", "aaaa", 0, 0, 19, 2, 2)
	replaced := tiering.ObjectKey("orders", "aaaa", 0, 10, 19, 1)
	oldIncarnation := tiering.ObjectKey("orders", "bbbb", 0, 0, 9, 1)
	deletedTopic := tiering.ObjectKey("gone", "cccc", 3, 0, 9, 1)
	walLive := tiering.WALKey(1, 100, 1)
	walOrphan := tiering.WALKey(1, 200, 2)
	refs := References{
		Topics:   map[string]string{"orders": "aaaa"},
		Segments: map[string]bool{live: true, liveCompacted: true, oldIncarnation: true},
		WAL:      map[string]bool{walLive: true},
		Pending:  map[string]bool{replaced: true, tiering.ProducerSnapshotKey(replaced): true},
	}
	listing := []objstore.ObjectInfo{
		{Key: live, ModTime: old},
		{Key: tiering.ProducerSnapshotKey(live), ModTime: old},
		{Key: liveCompacted, ModTime: old},
		{Key: uncommitted, ModTime: old},                                                     // a crash between PUT and commit
		{Key: tiering.ProducerSnapshotKey(uncommitted), ModTime: old},                        // its snapshot
		{Key: tiering.CompactedObjectKey("orders", "aaaa", 0, 20, 29, 2, 3), ModTime: young}, // PUT just now, commit to come
		{Key: replaced, ModTime: old},                                                        // garbage, its grace runs
		{Key: tiering.ProducerSnapshotKey(replaced), ModTime: old},
		{Key: oldIncarnation, ModTime: old}, // the topic was recreated
		{Key: deletedTopic, ModTime: old},
		{Key: tiering.SnapshotKey("orders", "aaaa", 0), ModTime: old},
		{Key: tiering.SnapshotKey("gone", "cccc", 3), ModTime: old},
		{Key: walLive, ModTime: old},
		{Key: walOrphan, ModTime: old},
		{Key: tiering.WALKey(1, 300, 3), ModTime: young},
		{Key: "notes/readme.txt", ModTime: old}, // not ours
	}
	var got []string
	for _, o := range Orphans(listing, refs, now, time.Minute) {
		got = append(got, o.Key)
	}
	want := []string{uncommitted, tiering.ProducerSnapshotKey(uncommitted), oldIncarnation, deletedTopic, tiering.SnapshotKey("gone", "cccc", 3), walOrphan}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("orphans:\n got %v\nwant %v", got, want)
	}
}
