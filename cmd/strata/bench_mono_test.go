package main

import (
	"testing"
	"time"
)

// monoNow stands for time.Now in bench produce's send times: it must lie
// between two time.Now readings taken around it, on both clocks.
func TestMonoNowIsNow(t *testing.T) {
	base := time.Now()
	time.Sleep(2 * time.Millisecond)
	before := time.Now()
	m := monoNow(base)
	after := time.Now()
	if m.Before(before) || m.After(after) {
		t.Fatalf("monoNow %v not within [%v, %v] (monotonic)", m, before, after)
	}
	// The wall reading: base's plus the monotonic time since, which may
	// differ from the wall clock only by a step of the wall clock.
	if w := m.Round(0); w.Sub(before.Round(0)) < -time.Second || w.Sub(after.Round(0)) > time.Second {
		t.Fatalf("monoNow's wall time %v far from [%v, %v]", w, before, after)
	}
	if d := m.Sub(base); d < 2*time.Millisecond {
		t.Fatalf("monoNow - base = %v, want at least the 2 ms slept", d)
	}
}
