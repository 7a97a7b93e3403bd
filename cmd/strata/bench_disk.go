package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-stream/strata/segment"
)

type diskOptions struct {
	dir          string
	bytesPerSec  string
	duration     time.Duration
	segmentBytes string
	writeBytes   string
	overwrite    bool
}

// newBenchDiskCmd is `strata bench disk`: the floor that a data
// directory's disk puts under acks=leader latency with --sync-policy
// always, measured without a broker.
func newBenchDiskCmd() *cobra.Command {
	o := &diskOptions{}
	cmd := &cobra.Command{
		Use:   "disk",
		Short: "Measure the data directory's disk the way the log uses it: appends, group-committed with fdatasync",
		Long: `Appends to fresh files in a temporary directory under --dir, the way a
partition's log does under --sync-policy always: at --bytes-per-sec, one
write and fdatasync of everything that fell due while the previous
fdatasync ran (a group commit), rolling to a new file every
--segment-bytes. It reports the fdatasync durations and, for each byte,
the time from when it was due until the fdatasync covering it returned:
the floor under acks=leader produce latency on this disk, with no
network, no broker and no other I/O.

--bytes-per-sec 0 writes --write-bytes and fdatasyncs back to back, and
reports the throughput instead. --overwrite writes into a file written
and synced beforehand, wrapping around, instead of appending to fresh
ones: on ext4 an append's fdatasync also commits the journal (the new
size and blocks), an overwrite's does not.

The files are removed at the end. A large delete can slow later
fdatasyncs while the disk discards the freed blocks: leave a pause
between runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchDisk(cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "./strata-data", "directory on the disk to measure (the broker's --data-dir); a temporary directory is made in it")
	f.StringVar(&o.bytesPerSec, "bytes-per-sec", "50MB", "append rate (0: write --write-bytes and fdatasync back to back)")
	f.DurationVar(&o.duration, "duration", 5*time.Second, "how long to measure")
	f.StringVar(&o.segmentBytes, "segment-bytes", "64MiB", "roll to a new file at this size (the broker's segment size)")
	f.StringVar(&o.writeBytes, "write-bytes", "64KiB", "bytes per write and fdatasync with --bytes-per-sec 0")
	f.BoolVar(&o.overwrite, "overwrite", false, "overwrite one file written and synced beforehand instead of appending to fresh files")
	return cmd
}

// diskRun is one measurement's state: the file being written and what was
// measured.
type diskRun struct {
	fsys    segment.OSFS
	dir     string
	segment int64
	f       segment.File
	files   int
	off     int64
	buf     []byte

	syncs   []time.Duration
	worst   worstRound
	written atomic.Int64 // read by the progress line
}

func runBenchDisk(out, progressOut io.Writer, o *diskOptions) error {
	rate, err := parseBytes(o.bytesPerSec)
	if err != nil {
		return fmt.Errorf("--bytes-per-sec: %w", err)
	}
	seg, err := parseBytes(o.segmentBytes)
	if err != nil || seg < 4096 {
		return fmt.Errorf("--segment-bytes %q: want a size of at least 4KiB", o.segmentBytes)
	}
	chunk, err := parseBytes(o.writeBytes)
	if err != nil || chunk < 1 || chunk > seg {
		return fmt.Errorf("--write-bytes %q: want a size from 1B to --segment-bytes", o.writeBytes)
	}
	if o.duration <= 0 {
		return fmt.Errorf("--duration %s: must be positive", o.duration)
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(o.dir, "bench-disk-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	r := &diskRun{dir: dir, segment: seg, buf: make([]byte, min(seg, 4<<20)), syncs: touched(1 << 20)}
	_, _ = rand.Read(r.buf)
	if err := r.open(o.overwrite); err != nil {
		return err
	}
	defer func() { _ = r.f.Close() }()

	stop := make(chan struct{})
	defer close(stop)
	go diskProgress(progressOut, r, stop)
	var byteLat []time.Duration
	if rate > 0 {
		// A sample per 10 µs of due time (at most a million), written
		// before the clock starts.
		byteLat = touched(int(min(1_000_000, o.duration/(10*time.Microsecond))) + 1)
	}
	start := time.Now()
	if rate == 0 {
		err = r.backToBack(start, o.duration, chunk, o.overwrite)
	} else {
		byteLat, err = r.paced(start, o.duration, float64(rate), o.overwrite, byteLat)
	}
	elapsed := time.Since(start)
	if err != nil {
		return err
	}

	mode := fmt.Sprintf("appends to fresh files of %s", o.segmentBytes)
	if o.overwrite {
		mode = fmt.Sprintf("overwrites of a synced %s file", o.segmentBytes)
	}
	written := float64(r.written.Load())
	fmt.Fprintf(out, "bench disk (%s, %s): %.1f MB in %s, %.1f MB/s, %d fdatasyncs of %.0f KiB on average\n",
		o.dir, mode, written/1e6, elapsed.Round(time.Millisecond), written/1e6/elapsed.Seconds(),
		len(r.syncs), written/float64(max(1, len(r.syncs)))/1024)
	slices.Sort(r.syncs)
	fmt.Fprintf(out, "write+fdatasync: %s\n", percentiles(r.syncs))
	if rate > 0 {
		slices.Sort(byteLat)
		fmt.Fprintf(out, "byte latency (due to durable) at %s/s: %s\n", o.bytesPerSec, percentiles(byteLat))
		w := r.worst
		fmt.Fprintf(out, "longest wait: %s for bytes due at %s: %s for the round before to finish, %s between rounds (this process sleeping or not running), %s in their write+fdatasync\n",
			fmtDur(w.wait()), w.due.Round(time.Millisecond), fmtDur(w.before), fmtDur(w.between), fmtDur(w.syncing))
		if got := written / elapsed.Seconds(); got < 0.95*float64(rate) {
			fmt.Fprintf(out, "the disk did not keep up: %.1f MB/s written of %.1f MB/s asked\n", got/1e6, float64(rate)/1e6)
		}
	}
	return nil
}

// open opens the first file; with overwrite it writes it whole and syncs
// it first.
func (r *diskRun) open(overwrite bool) error {
	r.files++
	f, err := r.fsys.OpenFile(filepath.Join(r.dir, fmt.Sprintf("%08d.log", r.files)), true)
	if err != nil {
		return err
	}
	r.f, r.off = f, 0
	if !overwrite {
		return nil
	}
	for off := int64(0); off < r.segment; off += int64(len(r.buf)) {
		if _, err := f.WriteAt(r.buf[:min(int64(len(r.buf)), r.segment-off)], off); err != nil {
			return err
		}
	}
	return f.Sync()
}

// write writes n bytes at the end (or, overwriting, wraps around at the
// segment size), rolling to a fresh file when appending would pass it,
// then fdatasyncs.
func (r *diskRun) write(n int64, overwrite bool) error {
	for n > 0 {
		if r.off == r.segment {
			if overwrite {
				r.off = 0
			} else {
				if err := r.f.Close(); err != nil {
					return err
				}
				if err := r.open(false); err != nil {
					return err
				}
			}
		}
		k := min(n, int64(len(r.buf)), r.segment-r.off)
		if _, err := r.f.WriteAt(r.buf[:k], r.off); err != nil {
			return err
		}
		r.off += k
		r.written.Add(k)
		n -= k
	}
	return r.f.Sync()
}

// backToBack writes chunk and fdatasyncs, again and again, for d.
func (r *diskRun) backToBack(start time.Time, d time.Duration, chunk int64, overwrite bool) error {
	for time.Since(start) < d {
		t := time.Now()
		if err := r.write(chunk, overwrite); err != nil {
			return err
		}
		r.syncs = append(r.syncs, time.Since(t))
	}
	return nil
}

// paced appends at rate bytes/s for d: each round writes everything due
// since the previous round began and fdatasyncs it. It appends to lat one
// latency sample per step of due time (the time from then to the end of
// the fdatasync that covered it), step being d / cap(lat).
func (r *diskRun) paced(start time.Time, d time.Duration, rate float64, overwrite bool, lat []time.Duration) ([]time.Duration, error) {
	step := d / time.Duration(cap(lat))
	covered := time.Duration(0) // bytes due before this are written
	prevDone := time.Duration(0)
	for {
		began := time.Since(start)
		if began >= d {
			return lat, nil
		}
		n := int64(rate * (began - covered).Seconds())
		if n < 512 {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		if err := r.write(n, overwrite); err != nil {
			return nil, err
		}
		done := time.Since(start)
		r.syncs = append(r.syncs, done-began)
		if done-covered > r.worst.wait() {
			r.worst = worstRound{due: covered, before: prevDone - covered, between: began - prevDone, syncing: done - began}
		}
		for due := covered; due < began && len(lat) < cap(lat); due += step {
			lat = append(lat, done-due)
		}
		covered, prevDone = began, done
	}
}

// worstRound is the round of paced whose first byte waited longest: when
// it fell due and the parts of its wait.
type worstRound struct {
	due time.Duration
	// before is the rest of the previous round (its write+fdatasync)
	// after the bytes fell due, between the time from its end to this
	// round's start (the process sleeping or not running), syncing this
	// round's write+fdatasync.
	before, between, syncing time.Duration
}

// wait is how long the round's first byte waited to be durable.
func (w worstRound) wait() time.Duration { return w.before + w.between + w.syncing }

// diskProgress prints a line a second until stop is closed.
func diskProgress(w io.Writer, r *diskRun, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			fmt.Fprintf(w, "disk: %.1f MB written, %s elapsed\n", float64(r.written.Load())/1e6, now.Sub(start).Round(time.Second))
		}
	}
}
