package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchCommands runs `strata bench produce` and `strata bench consume`
// against a real broker: both print progress on stderr and a report on
// stdout, and the produced records (untimed warm-up records, then
// --records) are in the topic.
func TestBenchCommands(t *testing.T) {
	b := startBroker(t, "")
	timeline := filepath.Join(t.TempDir(), "timeline.tsv")
	out, errOut, code := runCLI(t, b, nil, "bench", "produce", "--topic", "bt", "--partitions", "2",
		"--records", "20000", "--record-size", "100", "--rate", "10000", "--acks", "leader", "--warmup", "300ms",
		"--timeline", timeline, "--timeline-window", "500ms")
	if code != 0 {
		t.Fatalf("bench produce exited %d: %s%s", code, out, errOut)
	}
	for _, re := range []string{
		`bench produce \(acks=leader, producers=1, partitions=2\): 20000 records of 100 B in \d`,
		`throughput: \d+ records/s, [\d.]+ MB/s`,
		`ack latency: p50 [\d.]+ms, p99 [\d.]+ms, p99.9 [\d.]+ms, max [\d.]+ms`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("bench produce output lacks %q:\n%s", re, out)
		}
	}
	// At 10,000 records/s the run takes about 2 s: at least one progress
	// line.
	if !strings.Contains(errOut, "produced ") {
		t.Errorf("bench produce printed no progress:\n%s", errOut)
	}
	m := regexp.MustCompile(`warm-up: (\d+) records in 300ms before the measured ones`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("bench produce --warmup printed no warm-up line:\n%s", errOut)
	}
	warmed, _ := strconv.Atoi(m[1])
	if warmed < 1000 || warmed > 4000 {
		t.Errorf("%d warm-up records in 300 ms at 10,000 records/s", warmed)
	}
	// --timeline: every measured record in one 500 ms window of the 2 s
	// run, about 5,000 in each full one.
	tl, err := os.ReadFile(timeline)
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(tl)), "\n")
	if len(rows) < 2 || !strings.HasPrefix(rows[0], "# windows of 500ms from ") || rows[1] != "window_ms\trecords\tp50_ms\tp99_ms\tmax_ms" {
		t.Fatalf("timeline header:\n%s", tl)
	}
	var timed int
	for i, row := range rows[2:] {
		f := strings.Split(row, "\t")
		if len(f) != 5 || f[0] != strconv.Itoa(500*i) {
			t.Fatalf("timeline row %d: %q", i, row)
		}
		n, _ := strconv.Atoi(f[1])
		if i < 3 && (n < 4000 || n > 6000) {
			t.Errorf("timeline window %d: %d records at 10,000 records/s", i, n)
		}
		timed += n
	}
	if timed != 20000 {
		t.Errorf("timeline counts %d records, want 20000:\n%s", timed, tl)
	}
	c := newClient(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := c.DescribeTopic(ctx, "bt")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, p := range d.GetPartitions() {
		total += p.GetLogEndOffset() - p.GetLogStartOffset()
	}
	// The measured records, the warm-up ones, one per partition and one
	// through the measured producer before them.
	want := int64(20000 + warmed + 2 + 1)
	if total != want {
		t.Fatalf("topic bt holds %d records, want %d", total, want)
	}
	out = mustCLI(t, b, nil, "bench", "consume", "--topic", "bt", "--records", strconv.FormatInt(want, 10))
	if !strings.Contains(out, fmt.Sprintf("bench consume (partitions=2): %d records of 100 B", want)) {
		t.Errorf("bench consume output:\n%s", out)
	}
}
