package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/strata-stream/strata/internal/schedslice"
)

// setSchedSlice applies --sched-slice v to the process:
//   - "auto" (the default): schedslice.Default where the kernel has custom
//     slices; where it has not, or refuses, the kernel's default stays
//     and the reason is logged at info level. A tuning default never
//     stops a broker from starting.
//   - "0": the kernel's default.
//   - a duration in 100us-100ms: that slice, or an error if the kernel
//     cannot set it.
func setSchedSlice(v string, logger *slog.Logger) error {
	switch v {
	case "auto":
		n, err := schedslice.Set(schedslice.Default)
		if err != nil {
			msg := "scheduler slice left at the kernel's default"
			if !errors.Is(err, schedslice.ErrUnsupported) {
				msg += " (it refused --sched-slice auto)"
			}
			logger.Info(msg, "err", err)
			return nil
		}
		logger.Info("scheduler slice set", "slice", schedslice.Default, "threads", n, "sched_slice", "auto")
		return nil
	case "0", "0s":
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("--sched-slice %q: want auto, 0 or a duration such as 100us", v)
	}
	if d == 0 {
		return nil
	}
	n, err := schedslice.Set(d)
	if err != nil {
		return fmt.Errorf("--sched-slice %s: %w", v, err)
	}
	logger.Info("scheduler slice set", "slice", d, "threads", n)
	return nil
}
