package main

import (
	"io"
	"strings"
	"testing"
)

// TestBenchFloorFlags: bad flags of bench floor are one-line errors, before
// anything starts. (integration.TestBenchFloor runs it.)
func TestBenchFloorFlags(t *testing.T) {
	for _, c := range []struct{ args, want string }{
		{"--request-bytes big", `--request-bytes "big"`},
		{"--request-bytes 32MiB", `--request-bytes "32MiB"`},
		{"--rate 0", "--rate 0: must be positive"},
		{"--duration 0s", "--duration 0s: must be positive"},
		{"--warmup -1s", "--warmup -1s: must not be negative"},
		{"--against nats", `--against "nats": want minimal or broker`},
		{"--broker 127.0.0.1:1", "--broker is used with --against broker only"},
		{"--against broker --record-size 0", "--record-size 0: must be positive"},
	} {
		root := newRootCmd()
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		root.SetArgs(append([]string{"bench", "floor"}, strings.Fields(c.args)...))
		err := root.Execute()
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("bench floor %s: %v, want one line starting %q", c.args, err, c.want)
		}
	}
}
