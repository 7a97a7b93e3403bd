package tiering

import (
	"fmt"
	"strings"
	"testing"

	"github.com/strata-stream/strata/metadata"
)

// TestParseKey: every key this package builds parses back to what it
// names; anything else is unknown (and the garbage collector leaves it).
func TestParseKey(t *testing.T) {
	seg := ObjectKey("or.ders", "0a1b2c3d4e5f6789", 12, 100, 199, 3)
	comp := CompactedObjectKey("or.ders", "0a1b2c3d4e5f6789", 12, 100, 399, 4, 0xdeadbeef)
	cases := []struct {
		key     string
		kind    KeyKind
		segment string
	}{
		{seg, KeySegment, seg},
		{comp, KeySegment, comp},
		{ProducerSnapshotKey(seg), KeyProducers, seg},
		{ProducerSnapshotKey(comp), KeyProducers, comp},
		{SnapshotKey("or.ders", "0a1b2c3d4e5f6789", 12), KeySnapshot, ""},
		{WALKey(3, 1764172800000000000, 0xa1b2c3d4), KeyWAL, ""},
	}
	for _, c := range cases {
		pk, ok := ParseKey(c.key)
		if !ok || pk.Kind != c.kind || pk.Segment != c.segment {
			t.Errorf("ParseKey(%q) = %+v, %v; want kind %d, segment %q", c.key, pk, ok, c.kind, c.segment)
		}
		if c.kind != KeyWAL && (pk.Topic != "or.ders" || pk.TopicID != "0a1b2c3d4e5f6789" || pk.Partition != 12) {
			t.Errorf("ParseKey(%q) = %+v: wrong topic or partition", c.key, pk)
		}
	}
	for _, bad := range []string{
		"", "topics/", "other/x.seg", "topics/t.id/0/notes.txt", "topics/t/0/" + strings.Repeat("0", 20) + "-" + strings.Repeat("0", 20) + "-e1.seg",
		"topics/t.id/01/00000000000000000000-00000000000000000009-e1.seg",
		"topics/t.id/0/00000000000000000009-00000000000000000000-e1.seg",
		"topics/t.id/0/00000000000000000000-00000000000000000009-e1-cXYZ.seg",
		"topics/t.id/0/00000000000000000000-00000000000000000009-e.seg",
		"topics/t.id/0/sub/00000000000000000000-00000000000000000009-e1.seg",
		"wal/1/2.wal", "wal/0000000001/01764172800000000000.wal",
		".tmp/put-123",
	} {
		if pk, ok := ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) = %+v, want unknown", bad, pk)
		}
	}
}

// FuzzParseKey: ParseKey never panics, and a segment key it accepts is
// exactly the key the builders produce for what it parsed.
func FuzzParseKey(f *testing.F) {
	f.Add(ObjectKey("t", "abc", 1, 0, 9, 1))
	f.Add(CompactedObjectKey("t.x", "abc", 1, 0, 9, 1, 7))
	f.Add(ProducerSnapshotKey(ObjectKey("t", "abc", 1, 0, 9, 1)))
	f.Add(SnapshotKey("t", "abc", 0))
	f.Add(WALKey(1, 2, 3))
	f.Add("topics/a.b/0/x")
	f.Fuzz(func(t *testing.T, key string) {
		pk, ok := ParseKey(key)
		if !ok {
			return
		}
		switch pk.Kind {
		case KeySegment:
			if pk.Segment != key {
				t.Fatalf("segment key %q parsed as %q", key, pk.Segment)
			}
		case KeyProducers:
			if ProducerSnapshotKey(pk.Segment) != key {
				t.Fatalf("producer snapshot %q of segment %q", key, pk.Segment)
			}
		case KeySnapshot:
			if SnapshotKey(pk.Topic, pk.TopicID, pk.Partition) != key {
				t.Fatalf("snapshot key %q parsed as %+v", key, pk)
			}
		}
		if pk.Kind != KeyWAL && !strings.HasPrefix(key, PartitionPrefix(pk.Topic, pk.TopicID, pk.Partition)) {
			t.Fatalf("key %q outside the prefix of %+v", key, pk)
		}
	})
}

// TestEntryObjects: an entry's object, then its producer snapshot when it
// has one, entry by entry.
func TestEntryObjects(t *testing.T) {
	a, b := ObjectKey("t", "id", 0, 0, 9, 1), ObjectKey("t", "id", 0, 10, 19, 1)
	got := EntryObjects([]metadata.SegmentEntry{{Key: a, Producers: true}, {Key: b}})
	if want := []string{a, ProducerSnapshotKey(a), b}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("EntryObjects = %v, want %v", got, want)
	}
}
