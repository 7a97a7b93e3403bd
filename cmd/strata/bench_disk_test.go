package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// benchDisk runs `strata bench disk` with args and returns its report.
func benchDisk(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	root.SilenceErrors, root.SilenceUsage = true, true
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(append([]string{"bench", "disk"}, args...))
	err := root.Execute()
	return out.String(), err
}

var diskReport = regexp.MustCompile(`: ([0-9.]+) MB in .*, (\d+) fdatasyncs of`)

// TestBenchDisk: paced appends write what fell due at the rate asked,
// rolling files; back to back, each fdatasync covers --write-bytes; the
// files are gone afterwards; bad flags are one-line errors.
func TestBenchDisk(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args       []string
		minMB      float64
		maxMB      float64
		byteLat    bool
		writeBytes int64
	}{
		// 20 MB/s for 300 ms is 6 MB, across 1 MiB files.
		{[]string{"--bytes-per-sec", "20MB", "--duration", "300ms", "--segment-bytes", "1MiB"}, 3, 6.01, true, 0},
		{[]string{"--bytes-per-sec", "20MB", "--duration", "300ms", "--segment-bytes", "1MiB", "--overwrite"}, 3, 6.01, true, 0},
		{[]string{"--bytes-per-sec", "0", "--duration", "200ms", "--write-bytes", "64KiB", "--segment-bytes", "1MiB"}, 0.06, 1e9, false, 64 << 10},
		{[]string{"--bytes-per-sec", "0", "--duration", "200ms", "--write-bytes", "64KiB", "--segment-bytes", "1MiB", "--overwrite"}, 0.06, 1e9, false, 64 << 10},
	} {
		out, err := benchDisk(t, append([]string{"--dir", dir}, c.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		m := diskReport.FindStringSubmatch(out)
		if m == nil || !strings.Contains(out, "write+fdatasync: p50 ") {
			t.Fatalf("%v: report:\n%s", c.args, out)
		}
		mb, _ := strconv.ParseFloat(m[1], 64)
		syncs, _ := strconv.ParseInt(m[2], 10, 64)
		if mb < c.minMB || mb > c.maxMB || syncs < 1 {
			t.Errorf("%v: %.1f MB in %d fdatasyncs, want %.2f-%.2f MB", c.args, mb, syncs, c.minMB, c.maxMB)
		}
		if got := strings.Contains(out, "byte latency (due to durable)"); got != c.byteLat {
			t.Errorf("%v: byte latency reported %v, want %v:\n%s", c.args, got, c.byteLat, out)
		}
		if c.writeBytes > 0 {
			if want := fmt.Sprintf("%.1f MB", float64(syncs*c.writeBytes)/1e6); !strings.Contains(out, want) {
				t.Errorf("%v: %d fdatasyncs of %d B each, want %s written:\n%s", c.args, syncs, c.writeBytes, want, out)
			}
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("%v: left %d entries in --dir", c.args, len(left))
		}
	}
	for _, c := range []struct{ args, want string }{
		{"--bytes-per-sec fast", "--bytes-per-sec: "},
		{"--segment-bytes 1KiB", `--segment-bytes "1KiB"`},
		{"--write-bytes 2MiB --segment-bytes 1MiB", `--write-bytes "2MiB"`},
		{"--duration 0s", "--duration 0s: must be positive"},
	} {
		_, err := benchDisk(t, append([]string{"--dir", dir}, strings.Fields(c.args)...)...)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("bench disk %s: %v, want one line starting %q", c.args, err, c.want)
		}
	}
}
