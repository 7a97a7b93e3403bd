// Package lathist is a fixed-size latency histogram for load generators:
// recording a sample is a few atomic adds on memory allocated (and
// written) up front, whatever the number of samples, so a long benchmark
// run does not grow its heap with its sample count.
//
// Buckets are log-linear: below 256 ns each nanosecond has a bucket of
// its own; above, every power of two is split into 128 buckets of equal
// width, so a bucket is at most 1/128 (0.8 %) of the values it holds.
// A quantile is the midpoint of the bucket holding the sample of that
// rank, clamped to the smallest and largest sample recorded (both kept
// exactly), so it is within 0.4 % of the exact sample-rank quantile.
// Samples above MaxValue count in the last bucket (and in Max exactly).
package lathist

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	subBits = 7            // log2 of the buckets per power of two
	sub     = 1 << subBits // buckets per power of two
	linear  = 2 * sub      // values below this have a bucket each
	topBits = 40           // values below 1<<topBits have buckets of their own
	nBucket = linear + (topBits-subBits-1)*sub
)

// MaxValue is the largest value with a bucket of its own (about 18 min);
// larger samples are counted in the last bucket.
const MaxValue = time.Duration(1<<topBits - 1)

// Hist counts durations. Its zero value is empty and ready; Record, Merge
// and the readers may be called concurrently, but a reader racing with
// Record sees some of the concurrent samples and not others (each one
// whole). A Hist must not be copied after first use.
type Hist struct {
	buckets [nBucket]atomic.Uint64
	count   atomic.Uint64
	// min and max hold the value plus one, so that zero means "none".
	min, max atomic.Int64
}

// New returns an empty histogram whose memory has been written, so the
// first samples do not fault its pages in while being measured.
func New() *Hist {
	h := new(Hist)
	for i := range h.buckets {
		h.buckets[i].Store(0)
	}
	return h
}

// index is the bucket of v (v ≥ 0).
func index(v uint64) int {
	if v < linear {
		return int(v)
	}
	if v > uint64(MaxValue) {
		return nBucket - 1
	}
	e := bits.Len64(v) - subBits - 1 // v>>e is in [sub, 2*sub)
	return linear + (e-1)*sub + int(v>>e) - sub
}

// bounds is the range [lo, hi) of the values in bucket i.
func bounds(i int) (lo, hi uint64) {
	if i < linear {
		return uint64(i), uint64(i) + 1
	}
	e := (i-linear)/sub + 1
	m := uint64((i-linear)%sub + sub)
	return m << e, (m + 1) << e
}

// Record counts d; a negative d counts as 0.
func (h *Hist) Record(d time.Duration) {
	d = max(d, 0)
	h.buckets[index(uint64(d))].Add(1)
	h.count.Add(1)
	v := int64(d) + 1
	lowerTo(&h.min, v)
	raiseTo(&h.max, v)
}

// Merge adds the samples of o to h.
func (h *Hist) Merge(o *Hist) {
	for i := range o.buckets {
		if n := o.buckets[i].Load(); n != 0 {
			h.buckets[i].Add(n)
		}
	}
	h.count.Add(o.count.Load())
	if m := o.min.Load(); m != 0 {
		lowerTo(&h.min, m)
	}
	raiseTo(&h.max, o.max.Load())
}

// lowerTo sets a to v unless it holds a smaller value already (0 being
// "none", not a value).
func lowerTo(a *atomic.Int64, v int64) {
	for {
		m := a.Load()
		if m != 0 && m <= v || a.CompareAndSwap(m, v) {
			return
		}
	}
}

// raiseTo sets a to v unless it holds a value as large already.
func raiseTo(a *atomic.Int64, v int64) {
	for {
		m := a.Load()
		if m >= v || a.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count is the number of samples recorded.
func (h *Hist) Count() uint64 { return h.count.Load() }

// Min and Max are the smallest and largest samples (0 when empty).
func (h *Hist) Min() time.Duration { return time.Duration(max(h.min.Load()-1, 0)) }
func (h *Hist) Max() time.Duration { return time.Duration(max(h.max.Load()-1, 0)) }

// Quantile is the q-quantile (0 ≤ q ≤ 1) as the sample of rank
// ⌊q·(count−1)⌋ in ascending order would give it, to the bucket's
// precision: 0 when empty, Min at q = 0 and Max at q = 1 exactly.
func (h *Hist) Quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	if q == 1 {
		return h.Max()
	}
	if q == 0 {
		return h.Min()
	}
	rank := uint64(math.Floor(q * float64(n-1)))
	var seen uint64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen > rank {
			lo, hi := bounds(i)
			mid := time.Duration(lo + (hi-lo-1)/2)
			return min(max(mid, h.Min()), h.Max())
		}
	}
	return h.Max() // samples recorded while reading
}
