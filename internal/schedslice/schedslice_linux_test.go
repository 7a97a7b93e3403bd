package schedslice

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Every thread has the slice after Set, threads started after it too, and
// a thread's nice value is kept.
func TestSetCoversEveryThreadAndKeepsNice(t *testing.T) {
	// A thread with nice 5 before Set.
	niced := make(chan int)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := unix.Gettid()
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, 5); err != nil {
			t.Error(err)
		}
		niced <- tid
		<-release
	}()
	nicedTid := <-niced
	defer close(release)

	const d = 300 * time.Microsecond
	n, err := Set(d)
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("Set covered %d threads, want the process's (at least 2)", n)
	}
	// Threads created after Set: goroutines that hold their threads while
	// the others block force the runtime to start new ones.
	var wg sync.WaitGroup
	hold := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			<-hold
		})
	}
	time.Sleep(50 * time.Millisecond)
	tids, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	if len(tids) <= n {
		t.Logf("no thread was created after Set (%d threads)", len(tids))
	}
	for _, tid := range tids {
		got, err := Slice(tid)
		if err != nil {
			continue // exited
		}
		if got != d {
			t.Errorf("thread %d has slice %v, want %v", tid, got, d)
		}
	}
	close(hold)
	wg.Wait()
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, nicedTid)
	if err != nil {
		t.Fatal(err)
	}
	if nice := 20 - prio; nice != 5 {
		t.Fatalf("niced thread's nice is %d after Set, want 5", nice)
	}
}

func TestSetRefusesSlicesOutsideTheKernelsRange(t *testing.T) {
	for _, d := range []time.Duration{0, Min - 1, Max + 1} {
		if _, err := Set(d); err == nil {
			t.Errorf("Set(%v) succeeded", d)
		}
	}
}
