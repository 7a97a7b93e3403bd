package schedslice

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func set(d time.Duration) (int, error) {
	done := map[int]bool{}
	// A thread created while the list is read may come from one not yet
	// set: read it again until a pass finds no new thread.
	for pass := 0; pass < 10; pass++ {
		tids, err := threads()
		if err != nil {
			return len(done), err
		}
		added := false
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			if err := setThread(tid, d); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread exited meanwhile
				}
				if errors.Is(err, unix.EINVAL) && len(done) == 0 {
					return 0, fmt.Errorf("%w (sched_setattr: %v)", ErrUnsupported, err)
				}
				return len(done), fmt.Errorf("scheduler slice of thread %d: %w", tid, err)
			}
			if len(done) == 0 {
				// A kernel before custom slices may take sched_runtime
				// for SCHED_OTHER and ignore it: check it held.
				if got, err := Slice(tid); err == nil && got != d {
					return 0, fmt.Errorf("%w (thread %d has slice %v after setting %v)", ErrUnsupported, tid, got, d)
				}
			}
			done[tid], added = true, true
		}
		if !added {
			return len(done), nil
		}
	}
	return len(done), nil
}

// setThread sets tid's slice and keeps its nice value (sched_setattr sets
// both; a thread lowered by internal/lowprio stays lowered).
func setThread(tid int, d time.Duration) error {
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return err
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 0 /* SCHED_OTHER */, Nice: int32(20 - prio), Runtime: uint64(d.Nanoseconds())}
	return unix.SchedSetAttr(tid, &attr, 0)
}

// Slice returns thread tid's slice (0: the kernel's default).
func Slice(tid int) (time.Duration, error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return 0, err
	}
	return time.Duration(attr.Runtime), nil
}

func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
