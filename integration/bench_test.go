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

var floorReport = regexp.MustCompile(`(?m)^bench floor \((.*)\): (\d+) requests of (\d+) B at (\d+)/s in .*, after (\d+) unmeasured\nrequest latency: p50 [\d.]+ms, p99 [\d.]+ms, p99.9 [\d.]+ms, max [\d.]+ms\nrecord latency \(with the wait in a batch filling for .*\): p50 ([\d.]+)ms, p99 ([\d.]+)ms$`)

// TestBenchFloor runs `strata bench floor` against its minimal server (a
// child process of the real binary), with and without fdatasync: every
// request is acknowledged and measured, and the server's files are gone
// afterwards. Against a real broker its requests are record batches,
// appended to the topic one per request.
func TestBenchFloor(t *testing.T) {
	b := startBroker(t, "")
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		what string
	}{
		{[]string{"--fsync=false"}, "minimal server: gRPC, write, no fdatasync"},
		{[]string{"--dir", dir}, "minimal server: gRPC, write, group fdatasync in " + dir},
	} {
		// 200 requests/s: 20 in the 100 ms warm-up, 60 in the 300 ms measured.
		args := append([]string{"bench", "floor", "--rate", "200", "--duration", "300ms", "--warmup", "100ms", "--request-bytes", "16KiB"}, c.args...)
		out := mustCLI(t, b, nil, args...)
		m := floorReport.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%v: report:\n%s", c.args, out)
		}
		if m[1] != c.what || m[2] != "60" || m[3] != "16384" || m[4] != "200" || m[5] != "20" {
			t.Errorf("%v: report %q, want %q, 60 requests of 16384 B at 200/s after 20", c.args, m[0], c.what)
		}
		p50, _ := strconv.ParseFloat(m[6], 64)
		p99, _ := strconv.ParseFloat(m[7], 64)
		if p50 <= 0 || p99 < p50 {
			t.Errorf("%v: record latency p50 %v ms, p99 %v ms", c.args, p50, p99)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("%v: left %d entries in --dir", c.args, len(left))
		}
	}

	// Against the broker: its first record, then 10 warm-up and 20
	// measured batches in the topic.
	out := mustCLI(t, b, nil, "bench", "floor", "--against", "broker", "--topic", "fl", "--record-size", "100",
		"--rate", "100", "--duration", "200ms", "--warmup", "100ms", "--request-bytes", "4KiB")
	m := floorReport.FindStringSubmatch(out)
	if m == nil || m[2] != "20" || m[5] != "10" {
		t.Fatalf("against the broker: report:\n%s", out)
	}
	batch := regexp.MustCompile(`^Strata broker at ` + regexp.QuoteMeta(b.Addr) + `: batches of (\d+) records of 100 B, acks=leader$`).FindStringSubmatch(m[1])
	if batch == nil {
		t.Fatalf("against the broker: %q", m[1])
	}
	perBatch, _ := strconv.ParseInt(batch[1], 10, 64)
	if size, _ := strconv.Atoi(m[3]); perBatch < 2 || int64(size) < perBatch*100 || size > 4096+100 {
		t.Errorf("batches of %d records in %d B, want 100 B records filling about 4 KiB", perBatch, size)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := newClient(t, b).DescribeTopic(ctx, "fl")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.GetPartitions()[0].GetLogEndOffset(), 1+30*perBatch; got != want {
		t.Errorf("topic fl ends at offset %d after a record and 30 batches of %d records, want %d", got, perBatch, want)
	}
}
