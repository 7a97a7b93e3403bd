// Package schedslice gives every thread of the process a shorter
// scheduler time slice (Linux 6.12+, EEVDF custom slices: sched_setattr
// with SCHED_OTHER and sched_runtime).
//
// Under EEVDF a thread that wakes up waits, when every CPU is busy, for
// up to the running thread's slice (1.4 ms by default on a 2-CPU
// machine) unless its own, shorter slice gives it an earlier deadline. A
// produce round trip wakes several threads in the broker (and in its
// clients); on a machine shared with other busy processes those waits
// are the tail of the acknowledgement latency. A shorter slice does not
// change the process's CPU share, only how soon its threads run when they
// wake (docs/benchmarks.md, "Scheduler slices").
package schedslice

import (
	"fmt"
	"time"
)

// Min and Max bound the slice the kernel accepts.
const (
	Min = 100 * time.Microsecond
	Max = 100 * time.Millisecond
)

// Set gives every thread of the process, and so every thread created
// later (a new thread inherits its creator's), the slice d. It returns
// how many threads it set.
func Set(d time.Duration) (int, error) {
	if d < Min || d > Max {
		return 0, fmt.Errorf("scheduler slice %v: must be between %v and %v", d, Min, Max)
	}
	return set(d)
}
