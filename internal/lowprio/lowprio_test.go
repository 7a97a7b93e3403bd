package lowprio

import "testing"

// TestDoRunsFnAndWaits: on every platform Do runs fn and returns only
// after it has.
func TestDoRunsFnAndWaits(t *testing.T) {
	ran := false
	Do(func() { ran = true })
	if !ran {
		t.Fatal("Do returned before fn ran")
	}
}
