package retention

import (
	"time"

	"github.com/strata-stream/strata/tiering"
	"github.com/strata-stream/strata/tiering/objstore"
)

// References is what the cluster's metadata references in the bucket.
type References struct {
	// Topics maps each live topic to its incarnation's id.
	Topics map[string]string
	// Segments holds the object key of every manifest entry.
	Segments map[string]bool
	// WAL holds the object key of every committed WAL record.
	WAL map[string]bool
	// Pending holds the keys of garbage records not yet swept: they go
	// once their own grace period has passed.
	Pending map[string]bool
}

// Orphans returns the objects of listing that nothing references and that
// are older than grace at now, in listing order. Keys tiering.ParseKey
// does not know are never orphans.
func Orphans(listing []objstore.ObjectInfo, refs References, now time.Time, grace time.Duration) []objstore.ObjectInfo {
	var out []objstore.ObjectInfo
	for _, o := range listing {
		if isOrphan(o, refs, now, grace) {
			out = append(out, o)
		}
	}
	return out
}

// isOrphan reports whether nothing references o and it is older than
// grace at now (see Orphans).
func isOrphan(o objstore.ObjectInfo, refs References, now time.Time, grace time.Duration) bool {
	if !o.ModTime.Before(now.Add(-grace)) || refs.Pending[o.Key] {
		return false
	}
	pk, ok := tiering.ParseKey(o.Key)
	if !ok {
		return false
	}
	switch pk.Kind {
	case tiering.KeySegment, tiering.KeyProducers:
		return !refs.Segments[pk.Segment] || refs.Topics[pk.Topic] != pk.TopicID
	case tiering.KeySnapshot:
		id, live := refs.Topics[pk.Topic]
		return !live || id != pk.TopicID
	case tiering.KeyWAL:
		return !refs.WAL[o.Key]
	default:
		return false
	}
}
