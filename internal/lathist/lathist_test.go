package lathist

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// exact is the q-quantile of sorted as the histogram defines it.
func exact(sorted []time.Duration, q float64) time.Duration {
	return sorted[int(math.Floor(q*float64(len(sorted)-1)))]
}

// within reports whether got is within 0.4 % (half a bucket) of want.
func within(got, want time.Duration) bool {
	return math.Abs(float64(got-want)) <= float64(want)/256+1
}

// TestQuantileMatchesSortedSamples: for latency-like samples (log-normal
// around 2 ms with a tail to seconds, plus sub-microsecond ones) every
// quantile is within half a bucket of the sorted samples' one, and the
// extremes are exact.
func TestQuantileMatchesSortedSamples(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 1000, 200_000} {
		h := New()
		s := make([]time.Duration, n)
		for i := range s {
			var d time.Duration
			switch i % 50 {
			case 0:
				d = time.Duration(rng.IntN(300)) // below and across the linear range
			case 1:
				d = time.Duration(rng.Float64() * float64(3*time.Second))
			default:
				d = time.Duration(math.Exp(rng.NormFloat64()*0.6) * float64(2*time.Millisecond))
			}
			s[i] = d
			h.Record(d)
		}
		slices.Sort(s)
		if h.Count() != uint64(n) {
			t.Fatalf("n=%d: count %d", n, h.Count())
		}
		for _, q := range []float64{0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
			got, want := h.Quantile(q), exact(s, q)
			if !within(got, want) {
				t.Errorf("n=%d q=%v: %v, sorted samples give %v", n, q, got, want)
			}
		}
		if h.Min() != s[0] || h.Max() != s[n-1] || h.Quantile(0) != s[0] || h.Quantile(1) != s[n-1] {
			t.Errorf("n=%d: min %v max %v, want %v %v", n, h.Min(), h.Max(), s[0], s[n-1])
		}
	}
}

// TestBuckets: every value falls in a bucket whose bounds hold it, the
// buckets tile the range without gaps, and none is wider than 1/128 of
// its lower bound.
func TestBuckets(t *testing.T) {
	var prevHi uint64
	for i := range nBucket {
		lo, hi := bounds(i)
		if lo != prevHi {
			t.Fatalf("bucket %d starts at %d, the previous ended at %d", i, lo, prevHi)
		}
		if lo >= linear && (hi-lo)*sub > lo {
			t.Fatalf("bucket %d [%d, %d) wider than 1/%d", i, lo, hi, sub)
		}
		for _, v := range []uint64{lo, (lo + hi) / 2, hi - 1} {
			if index(v) != i {
				t.Fatalf("value %d in bucket %d, want %d [%d, %d)", v, index(v), i, lo, hi)
			}
		}
		prevHi = hi
	}
	if prevHi != uint64(MaxValue)+1 {
		t.Fatalf("buckets end at %d, want %d", prevHi, MaxValue+1)
	}
	if index(math.MaxInt64) != nBucket-1 {
		t.Fatalf("a huge value is in bucket %d", index(math.MaxInt64))
	}
}

// TestEmptyAndOutOfRange: an empty histogram gives zeros; a negative
// sample counts as 0 and one above MaxValue keeps its exact Max.
func TestEmptyAndOutOfRange(t *testing.T) {
	var h Hist
	if h.Quantile(0.5) != 0 || h.Min() != 0 || h.Max() != 0 || h.Count() != 0 {
		t.Fatal("empty histogram not zero")
	}
	h.Record(-time.Second)
	h.Record(time.Hour)
	h.Record(time.Hour)
	if p50 := h.Quantile(0.5); h.Min() != 0 || h.Max() != time.Hour || p50 > time.Hour || p50 < MaxValue/2 {
		t.Fatalf("min %v max %v p50 %v", h.Min(), h.Max(), p50)
	}
}

// TestConcurrentRecordAndMerge: samples recorded from several goroutines
// into per-goroutine and shared histograms are all counted, and merging
// the per-goroutine ones gives the shared one's quantiles.
func TestConcurrentRecordAndMerge(t *testing.T) {
	shared := New()
	parts := make([]*Hist, 4)
	var wg sync.WaitGroup
	for g := range parts {
		parts[g] = New()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10_000 {
				d := time.Duration(g*10_000+i) * time.Microsecond
				parts[g].Record(d)
				shared.Record(d)
			}
		}()
	}
	wg.Wait()
	merged := New()
	for _, p := range parts {
		merged.Merge(p)
	}
	if merged.Count() != 40_000 || shared.Count() != 40_000 {
		t.Fatalf("counts %d %d", merged.Count(), shared.Count())
	}
	for _, q := range []float64{0, 0.5, 0.99, 1} {
		if merged.Quantile(q) != shared.Quantile(q) {
			t.Errorf("q=%v: merged %v, shared %v", q, merged.Quantile(q), shared.Quantile(q))
		}
	}
	if want := 39_999 * time.Microsecond; merged.Max() != want || merged.Min() != 0 {
		t.Errorf("merged min %v max %v", merged.Min(), merged.Max())
	}
	if got, want := merged.Quantile(0.5), 19_999*time.Microsecond; !within(got, want) {
		t.Errorf("p50 %v, want about %v", got, want)
	}
}

func BenchmarkRecord(b *testing.B) {
	h := New()
	d := 3 * time.Millisecond
	for i := 0; b.Loop(); i++ {
		h.Record(d + time.Duration(i&1023))
	}
}
