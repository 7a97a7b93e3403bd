package compaction

import (
	"context"
	"sync"
	"time"
)

// Limiter bounds the bytes per second compaction runs read, across all
// the runs that share it. A nil Limiter, or one with a rate of zero, does
// not limit. It is safe for concurrent use.
type Limiter struct {
	rate  float64 // bytes per second
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	mu    struct {
		sync.Mutex
		next time.Time // when the bytes reserved so far are paid for
	}
}

// NewLimiter returns a limiter of bytesPerSec (0: unlimited).
func NewLimiter(bytesPerSec int64) *Limiter {
	return &Limiter{rate: float64(bytesPerSec), now: time.Now, sleep: sleepCtx}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait reserves n bytes and waits until the bytes reserved before them are
// paid for at the rate (so a run reads at most the rate on average; the
// first read of an idle limiter goes at once).
func (l *Limiter) Wait(ctx context.Context, n int64) error {
	if l == nil || l.rate <= 0 || n <= 0 {
		return ctx.Err()
	}
	l.mu.Lock()
	now := l.now()
	if l.mu.next.Before(now) {
		l.mu.next = now
	}
	wait := l.mu.next.Sub(now)
	l.mu.next = l.mu.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	l.mu.Unlock()
	if wait <= 0 {
		return ctx.Err()
	}
	return l.sleep(ctx, wait)
}
