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
	if err := s.checkLeaderEpoch(topic, 0, 1); err != nil {
		t.Fatal(err)
	}
	epochIs("1")
	if err := os.WriteFile(marker, []byte("log"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Led again right after its own epoch (a restart): the log stays.
	if err := s.checkLeaderEpoch(topic, 0, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the log of the previous epoch was discarded: %v", err)
	}
	epochIs("2")
	// Others led epochs 3 and 4: the local log is stale and goes.
	if err := s.checkLeaderEpoch(topic, 0, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("a stale local log was kept: %v", err)
	}
	epochIs("5")
}
