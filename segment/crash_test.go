package segment

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestCrashRecovery drives a log on MemFS through random appends, syncs,
// rolls and injected write/sync failures, then simulates a machine crash
// (unsynced bytes lost, or partly kept and garbled) and reopens it, many
// times over. After every crash: every batch that was synced is readable and
// identical, every batch served is one that was appended at that offset, the
// offsets are contiguous, and the log accepts appends again.
func TestCrashRecovery(t *testing.T) {
	seeds := 150
	if testing.Short() {
		seeds = 30
	}
	for seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 42))
		crashRecoveryRun(t, seed, r)
		if t.Failed() {
			return
		}
	}
}

func crashRecoveryRun(t *testing.T, seed int, r *rand.Rand) {
	fsys := NewMemFS()
	cfg := Config{
		Dir:                "/p",
		FS:                 fsys,
		SegmentBytes:       int64(4<<10 + r.IntN(8<<10)),
		IndexIntervalBytes: 64 + r.IntN(2048),
		SyncPolicy:         SyncPolicy(r.IntN(3)),
		Logger:             quiet,
	}
	appended := map[int64][]byte{} // base offset -> batch as stored
	var synced int64               // every offset below this was fsynced
	id := 0
	for round := range 4 {
		cfg.FS = fsys
		l, err := Open(cfg)
		if err != nil {
			t.Fatalf("seed %d round %d: Open: %v", seed, round, err)
		}
		end := verifyRecovered(t, seed, round, l, appended, synced)
		for off := range appended {
			if off >= end {
				delete(appended, off)
			}
		}
		synced = end // verifyRecovered synced everything below end

		ops := 5 + r.IntN(60)
		for range ops {
			switch k := r.IntN(20); {
			case k == 0:
				fsys.FailWrite(1+r.IntN(3), r.IntN(2) == 0)
			case k == 1:
				fsys.FailSync(1 + r.IntN(2))
			case k == 2:
				if err := l.Roll(); err != nil && !isInjected(err) {
					t.Fatalf("seed %d: Roll: %v", seed, err)
				}
			case k < 6:
				next := l.WrittenOffset()
				if err := l.Sync(context.Background(), next); err == nil {
					synced = max(synced, next)
				} else if !isInjected(err) {
					t.Fatalf("seed %d: Sync: %v", seed, err)
				}
			default:
				b := testBatch(id, 1+r.IntN(5), r.IntN(700), int64(id))
				id++
				first, last, err := l.Append(b)
				if err != nil {
					if !isInjected(err) {
						t.Fatalf("seed %d: Append: %v", seed, err)
					}
					continue
				}
				appended[first] = b
				if err := l.WaitDurable(context.Background(), last+1); err == nil {
					if cfg.SyncPolicy == SyncAlways {
						synced = max(synced, last+1)
					}
				} else if !isInjected(err) {
					t.Fatalf("seed %d: WaitDurable: %v", seed, err)
				}
			}
		}
		opts := CrashOptions{}
		if r.IntN(2) == 0 {
			opts.Rand = r
		}
		crashed := fsys.Crash(opts)
		l.Close() // writes go to the abandoned fsys
		fsys = crashed
	}
}

func isInjected(err error) bool { return errors.Is(err, ErrInjected) || errors.Is(err, ErrFailed) }

// verifyRecovered checks a freshly recovered log and returns its end.
func verifyRecovered(t *testing.T, seed, round int, l *Log, appended map[int64][]byte, synced int64) int64 {
	t.Helper()
	start, end := l.Offsets()
	if start != 0 {
		t.Fatalf("seed %d round %d: log starts at %d", seed, round, start)
	}
	if end < synced {
		t.Fatalf("seed %d round %d: recovered end %d is below the synced offset %d", seed, round, end, synced)
	}
	next := int64(0)
	for _, b := range readAllBatches(t, l) {
		h, _ := ValidateBatch(b)
		if h.BaseOffset != next {
			t.Fatalf("seed %d round %d: batch at %d, want %d", seed, round, h.BaseOffset, next)
		}
		want, ok := appended[h.BaseOffset]
		if !ok || !bytes.Equal(want, b) {
			t.Fatalf("seed %d round %d: served batch at %d was never appended there (known: %v)", seed, round, h.BaseOffset, ok)
		}
		next = h.NextOffset()
	}
	if next != end {
		t.Fatalf("seed %d round %d: read up to %d, end is %d", seed, round, next, end)
	}
	// The log accepts appends again: append one batch and read it back,
	// then leave the log as it was by noting the batch as appended.
	b := testBatch(1_000_000+round, 1, 10, 0)
	first, last, err := l.Append(b)
	if err != nil || first != end {
		t.Fatalf("seed %d round %d: append after recovery: %d %v, want %d", seed, round, first, err, end)
	}
	if err := l.Sync(context.Background(), last+1); err != nil {
		t.Fatalf("seed %d round %d: sync after recovery: %v", seed, round, err)
	}
	appended[first] = b
	return last + 1
}
