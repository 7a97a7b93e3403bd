package retention

import (
	"testing"
	"time"
)

func TestExpired(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	segs := []Segment{
		{MaxTimestamp: 100_000, Size: 10},
		{MaxTimestamp: 200_000, Size: 10},
		{MaxTimestamp: 950_000, Size: 10},
		{MaxTimestamp: 300_000, Size: 10}, // old, but after a recent one
		{MaxTimestamp: 2_000_000, Size: 10},
	}
	cases := []struct {
		name  string
		segs  []Segment
		total int64
		l     Limits
		want  int
	}{
		{"unlimited", segs, 50, Limits{Ms: -1, Bytes: -1}, 0},
		{"time: the old prefix only", segs, 50, Limits{Ms: 500_000, Bytes: -1}, 2},
		{"time: nothing is that old", segs, 50, Limits{Ms: 999_999, Bytes: -1}, 0},
		{"time: the boundary is kept", segs, 50, Limits{Ms: 900_000, Bytes: -1}, 0},
		{"time: just past it", segs, 50, Limits{Ms: 899_999, Bytes: -1}, 1},
		{"time zero: all but the future", segs, 50, Limits{Ms: 0, Bytes: -1}, 4},
		{"bytes: down to the limit", segs, 50, Limits{Ms: -1, Bytes: 30}, 2},
		{"bytes: the local tail counts", segs, 70, Limits{Ms: -1, Bytes: 30}, 4},
		{"bytes: under it", segs, 50, Limits{Ms: -1, Bytes: 50}, 0},
		{"bytes: one over", segs, 51, Limits{Ms: -1, Bytes: 50}, 1},
		{"bytes zero: everything eligible", segs, 50, Limits{Ms: -1, Bytes: 0}, 5},
		{"either limit", segs, 50, Limits{Ms: 850_000, Bytes: 40}, 1},
		{"both: the larger prefix", segs, 50, Limits{Ms: 500_000, Bytes: 40}, 2},
		{"no segments", nil, 100, Limits{Ms: 0, Bytes: 0}, 0},
	}
	for _, c := range cases {
		if got := Expired(c.segs, c.total, now, c.l); got != c.want {
			t.Errorf("%s: Expired = %d, want %d", c.name, got, c.want)
		}
	}
}
