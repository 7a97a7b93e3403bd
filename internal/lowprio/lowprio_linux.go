package lowprio

import "syscall"

// lower sets the calling thread's nice value: on Linux, PRIO_PROCESS with
// a thread id applies to that thread alone.
func lower() {
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), Niceness)
}
