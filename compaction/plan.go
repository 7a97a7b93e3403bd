package compaction

import (
	"math/bits"
	"time"

	"github.com/strata-stream/strata/metadata"
)

// DirtyRatio is the share of the manifest's bytes (RawSize) in dirty
// entries: those no run has compacted yet (Dirty).
func DirtyRatio(entries []metadata.SegmentEntry, cleanedEnd int64) float64 {
	var dirty, total int64
	for _, e := range entries {
		total += e.RawSize
		if Dirty(e, cleanedEnd) {
			dirty += e.RawSize
		}
	}
	if total == 0 {
		return 0
	}
	return float64(dirty) / float64(total)
}

// Dirty reports whether e holds offsets from cleanedEnd on: records no
// run has compacted. An entry merged across cleanedEnd (small segments
// merged while the topic was not compacted) is dirty though it starts
// below it.
func Dirty(e metadata.SegmentEntry, cleanedEnd int64) bool { return e.LastOffset >= cleanedEnd }

// Due reports whether a compaction run is due: the dirty ratio has reached
// minDirtyRatio (and something is dirty), or a tombstone the last run kept
// may go now (deleteRetention after its timestamp).
func Due(entries []metadata.SegmentEntry, st metadata.CompactionStatus, now time.Time, minDirtyRatio float64, deleteRetention time.Duration) bool {
	if len(entries) == 0 {
		return false
	}
	if st.KeptTombstones > 0 && now.UnixMilli() >= st.OldestTombstoneMs+deleteRetention.Milliseconds() {
		return true
	}
	r := DirtyRatio(entries, st.CleanedEnd)
	return r > 0 && r >= minDirtyRatio
}

// MinMergeInputs is the fewest small segments MergePlan merges into one.
const MinMergeInputs = 4

// MergePlan returns the groups [from, to) of entries to merge, for a
// topic that is not compacted: runs of at least MinMergeInputs (and at
// most maxInputs) adjacent entries without a gap between them, each
// smaller than half of segmentBytes and of the same size tier (sizes
// within a factor of four), together at most segmentBytes. Merging only
// like sizes bounds how often a byte is rewritten to the number of tiers.
func MergePlan(entries []metadata.SegmentEntry, segmentBytes int64, maxInputs int) [][2]int {
	small := func(e metadata.SegmentEntry) bool { return e.RawSize < segmentBytes/2 }
	tier := func(e metadata.SegmentEntry) int { return bits.Len64(uint64(max(e.RawSize, 1))) / 2 }
	var out [][2]int
	for i := 0; i < len(entries); {
		if !small(entries[i]) {
			i++
			continue
		}
		j, sum := i+1, entries[i].RawSize
		for j < len(entries) && j-i < maxInputs && small(entries[j]) && tier(entries[j]) == tier(entries[i]) &&
			entries[j].BaseOffset == entries[j-1].LastOffset+1 && sum+entries[j].RawSize <= segmentBytes {
			sum += entries[j].RawSize
			j++
		}
		if j-i >= MinMergeInputs {
			out = append(out, [2]int{i, j})
			i = j
		} else {
			i++
		}
	}
	return out
}
