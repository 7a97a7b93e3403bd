package integration

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBenchCommands runs `strata bench produce` and `strata bench consume`
// against a real broker: both print progress on stderr and a report on
// stdout, and the produced records (one untimed warm-up record per
// partition, then --records) are in the topic.
func TestBenchCommands(t *testing.T) {
	b := startBroker(t, "")
	out, errOut, code := runCLI(t, b, nil, "bench", "produce", "--topic", "bt", "--partitions", "2",
		"--records", "20000", "--record-size", "100", "--rate", "10000", "--acks", "leader")
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
	if total != 20000+2 {
		t.Fatalf("topic bt holds %d records, want 20000 and one warm-up record per partition", total)
	}
	out = mustCLI(t, b, nil, "bench", "consume", "--topic", "bt", "--records", "20002")
	if !regexp.MustCompile(`bench consume \(partitions=2\): 20002 records of 100 B`).MatchString(out) {
		t.Errorf("bench consume output:\n%s", out)
	}
}
