package retention

import "time"

// Segment is what retention knows of a segment.
type Segment struct {
	// MaxTimestamp is the newest record's timestamp (ms since the epoch).
	MaxTimestamp int64
	// Size counts against the byte limit.
	Size int64
}

// Limits are a retention's bounds; a negative bound is unlimited.
type Limits struct {
	// Ms expires a segment whose newest record is older than this.
	Ms int64
	// Bytes expires the oldest segments while the log is larger.
	Bytes int64
}

// Expired returns how many of segs, oldest first, expire at now: the
// longest prefix each of whose segments is older than l.Ms (its newest
// record is), or must go to bring the log down to l.Bytes. total is the
// size of the whole log, including segments that may not expire (the
// active one, or those not yet uploaded). A segment stamped in the future
// never expires by time.
func Expired(segs []Segment, total int64, now time.Time, l Limits) int {
	nowMs := now.UnixMilli()
	n := 0
	for _, s := range segs {
		overBytes := l.Bytes >= 0 && total > l.Bytes
		tooOld := l.Ms >= 0 && s.MaxTimestamp < nowMs-l.Ms
		if !overBytes && !tooOld {
			break
		}
		total -= s.Size
		n++
	}
	return n
}
