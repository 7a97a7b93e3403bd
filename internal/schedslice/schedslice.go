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
	"errors"
	"fmt"
	"time"
)

// Min and Max bound the slice the kernel accepts; Default is what `strata
// serve` and `strata bench produce` set where the kernel has custom slices.
const (
	Min     = 100 * time.Microsecond
	Max     = 100 * time.Millisecond
	Default = Min
)

// ErrUnsupported is returned by Set where the kernel has no custom slices
// (before Linux 6.12, or not Linux): nothing was changed.
var ErrUnsupported = errors.New("schedslice: custom scheduler slices need Linux 6.12 or later")

// Set gives every thread of the process, and so every thread created
// later (a new thread inherits its creator's), the slice d. It returns
// how many threads it set.
func Set(d time.Duration) (int, error) {
	if d < Min || d > Max {
		return 0, fmt.Errorf("scheduler slice %v: must be between %v and %v", d, Min, Max)
	}
	return set(d)
}
