package broker

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-stream/strata/metadata"
)

// TestStaleLocalLogIsDiscarded: a broker keeps its local log only when it
// led the partition in the epoch just before the new one.
func TestStaleLocalLogIsDiscarded(t *testing.T) {
	s := New(Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}, nil, nil)
	topic := metadata.Topic{Name: "t", ID: "abc", Partitions: 1}
	dir := s.partitionDir(topic, 0)
	marker := filepath.Join(dir, "00000000000000000000.log")
	epochIs := func(want string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, leaderEpochFile))
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Fatalf("leader-epoch file = %q, %v; want %s", b, err, want)
		}
	}
	if err := s.checkLeaderEpoch(topic, 0, 1, 1); err != nil {
		t.Fatal(err)
	}
	epochIs("1")
	if err := os.WriteFile(marker, []byte("log"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Led again right after its own epoch (a restart): the log stays.
	if err := s.checkLeaderEpoch(topic, 0, 2, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the log of the previous epoch was discarded: %v", err)
	}
	epochIs("2")
	// Its own attempt took epoch 3 and failed before recording it; epoch 4
	// is its again: the run goes on (run start 1), the log stays.
	if err := s.checkLeaderEpoch(topic, 0, 4, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the log was discarded although no other broker led: %v", err)
	}
	epochIs("4")
	// Another broker led epoch 5; now epoch 6 starts a new run: the local
	// log is stale and goes.
	if err := s.checkLeaderEpoch(topic, 0, 6, 6); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("a stale local log was kept: %v", err)
	}
	epochIs("6")
}
