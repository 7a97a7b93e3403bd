package main

import (
	"bytes"
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-stream/strata/internal/schedslice"
)

// --sched-slice auto sets the default slice where the kernel has custom
// slices and says so; where it has not, it starts anyway and says why.
func TestSchedSliceAuto(t *testing.T) {
	var logs bytes.Buffer
	if err := setSchedSlice("auto", slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatalf("auto failed: %v", err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	got, err := schedslice.Slice(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	switch got {
	case schedslice.Default:
		if !strings.Contains(logs.String(), "scheduler slice set") {
			t.Fatalf("slice set, but the log does not say so: %q", logs.String())
		}
	case 0:
		if !strings.Contains(logs.String(), "left at the kernel's default") {
			t.Fatalf("slice not set, but the log does not say why: %q", logs.String())
		}
	default:
		t.Fatalf("slice %v after auto, want %v or the kernel's default", got, schedslice.Default)
	}
}

// Values other than auto, 0 and a slice the kernel takes are refused with
// what is wanted.
func TestSchedSliceRefusesBadValues(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	for _, c := range []struct{ v, want string }{
		{"fast", "want auto, 0 or a duration"},
		{"50us", "must be between 100µs and 100ms"},
		{"1s", "must be between 100µs and 100ms"},
		{"-1ms", "must be between 100µs and 100ms"},
	} {
		err := setSchedSlice(c.v, logger)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--sched-slice") {
			t.Errorf("--sched-slice %s: err %v, want one naming the flag and %q", c.v, err, c.want)
		}
	}
	for _, v := range []string{"0", "0s"} {
		if err := setSchedSlice(v, logger); err != nil {
			t.Errorf("--sched-slice %s: %v", v, err)
		}
	}
}
