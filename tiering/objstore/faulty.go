package objstore

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Op names a Store operation, for fault rules and call counts.
type Op string

const (
	OpAny      Op = ""
	OpPut      Op = "put"
	OpGet      Op = "get"
	OpGetRange Op = "get_range"
	OpStat     Op = "stat"
	OpList     Op = "list"
	OpDelete   Op = "delete"
)

// Faulty wraps a Store with switchable faults, for tests: added latency,
// the next n calls failing (before or after they take effect), SlowDown,
// and a whole-store outage. It is real code, safe for concurrent use.
type Faulty struct {
	s  Store
	mu struct {
		sync.Mutex
		latency time.Duration
		down    bool
		rules   []faultRule
		calls   map[Op]int
	}
}

type faultRule struct {
	op    Op
	n     int
	err   error
	after bool // the operation takes effect, then err is returned
}

// NewFaulty wraps s with no faults switched on.
func NewFaulty(s Store) *Faulty {
	f := &Faulty{s: s}
	f.mu.calls = map[Op]int{}
	return f
}

// SetLatency delays every call by d (0 for none); the delay ends early
// when the call's context does.
func (f *Faulty) SetLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.latency = d
}

// SetDown makes every call fail with ErrUnavailable until SetDown(false).
func (f *Faulty) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.down = down
}

// FailNext makes the next n calls of op (OpAny: of any operation) fail
// with err without taking effect.
func (f *Faulty) FailNext(op Op, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.rules = append(f.mu.rules, faultRule{op: op, n: n, err: err})
}

// FailNextAfter makes the next n calls of op take effect and then return
// err: a lost acknowledgement (the PUT landed, the client saw an error).
func (f *Faulty) FailNextAfter(op Op, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.rules = append(f.mu.rules, faultRule{op: op, n: n, err: err, after: true})
}

// SlowDown makes the next n calls of op fail with ErrSlowDown, as S3
// answers 503 SlowDown under load.
func (f *Faulty) SlowDown(op Op, n int) {
	f.FailNext(op, n, fmt.Errorf("%w: injected 503 SlowDown", ErrSlowDown))
}

// Calls returns how many calls of op (OpAny: all) were made.
func (f *Faulty) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op == OpAny {
		n := 0
		for _, c := range f.mu.calls {
			n += c
		}
		return n
	}
	return f.mu.calls[op]
}

// before applies latency and returns the fault for this call: err to
// return without calling the store, or after to return once it ran.
func (f *Faulty) before(ctx context.Context, op Op) (err, after error) {
	f.mu.Lock()
	f.mu.calls[op]++
	latency, down := f.mu.latency, f.mu.down
	for i := range f.mu.rules {
		r := &f.mu.rules[i]
		if r.n > 0 && (r.op == OpAny || r.op == op) {
			r.n--
			if r.after {
				after = r.err
			} else {
				err = r.err
			}
			break
		}
	}
	f.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err(), nil
		}
	}
	if down {
		return fmt.Errorf("%w: injected outage", ErrUnavailable), nil
	}
	return err, after
}

func (f *Faulty) Put(ctx context.Context, key string, data []byte) error {
	if err, after := f.before(ctx, OpPut); err != nil {
		return err
	} else if err := f.s.Put(ctx, key, data); err != nil || after == nil {
		return err
	} else {
		return after
	}
}

func (f *Faulty) Get(ctx context.Context, key string) ([]byte, error) {
	err, after := f.before(ctx, OpGet)
	if err != nil {
		return nil, err
	}
	b, err := f.s.Get(ctx, key)
	if err == nil && after != nil {
		return nil, after
	}
	return b, err
}

func (f *Faulty) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	err, after := f.before(ctx, OpGetRange)
	if err != nil {
		return nil, err
	}
	b, err := f.s.GetRange(ctx, key, off, length)
	if err == nil && after != nil {
		return nil, after
	}
	return b, err
}

func (f *Faulty) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	err, after := f.before(ctx, OpStat)
	if err != nil {
		return ObjectInfo{}, err
	}
	info, err := f.s.Stat(ctx, key)
	if err == nil && after != nil {
		return ObjectInfo{}, after
	}
	return info, err
}

func (f *Faulty) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	err, after := f.before(ctx, OpList)
	if err != nil {
		return err
	}
	if err := f.s.List(ctx, prefix, fn); err != nil {
		return err
	}
	return after
}

func (f *Faulty) Delete(ctx context.Context, key string) error {
	err, after := f.before(ctx, OpDelete)
	if err != nil {
		return err
	}
	if err := f.s.Delete(ctx, key); err != nil {
		return err
	}
	return after
}
