package lowprio

import (
	"runtime"
	"syscall"
	"testing"
)

// TestDoRunsAtLowerPriority (Linux, where thread priorities are set: the
// file's name limits it to Linux builds, so it never skips).
func TestDoRunsAtLowerPriority(t *testing.T) {
	var got int
	var err error
	Do(func() {
		// getpriority returns 20 - nice for a thread id on Linux.
		var prio int
		prio, err = syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
		got = 20 - prio
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != Niceness {
		t.Fatalf("nice inside Do = %d, want %d", got, Niceness)
	}
	// The caller's thread keeps its priority.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	if 20-prio == Niceness {
		t.Fatalf("caller's thread was lowered too")
	}
}
