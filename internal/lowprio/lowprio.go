// Package lowprio runs background CPU work (compressing segments for the
// bucket) at a lower operating-system scheduling priority than the
// broker's request handling, so that a burst of compression on a small
// machine delays acknowledgements as little as possible.
package lowprio

import "runtime"

// Niceness is the nice value background threads run at (0 normal, 19
// lowest).
const Niceness = 10

// Do runs fn on an OS thread of its own at Niceness and returns when fn
// returns. Where thread priorities cannot be set, fn simply runs.
func Do(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The goroutine exits still locked to its thread, so the runtime
		// ends the thread instead of handing the lowered priority to
		// other goroutines.
		runtime.LockOSThread()
		lower()
		fn()
	}()
	<-done
}
