package freeport

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"
)

// TestAddrIsFreeAndOutsideEphemeralRange: every address can be bound, and
// its port is outside the range outgoing connections draw from.
func TestAddrIsFreeAndOutsideEphemeralRange(t *testing.T) {
	lo, hi := ephemeralRange()
	seen := map[string]bool{}
	for range 50 {
		addr, err := Addr()
		if err != nil {
			t.Fatal(err)
		}
		host, p, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("Addr() = %q, want 127.0.0.1:port", addr)
		}
		port, _ := strconv.Atoi(p)
		if port < minPort || (port >= lo && port <= hi) {
			t.Fatalf("port %d: want >= %d and outside the ephemeral range %d-%d", port, minPort, lo, hi)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("Addr() = %s, but it cannot be bound: %v", addr, err)
		}
		l.Close()
		seen[addr] = true
	}
	if len(seen) < 40 {
		t.Fatalf("50 picks gave only %d distinct addresses: not random", len(seen))
	}
}

// TestAddrSkipsTakenPort: a port that is bound is never returned.
func TestAddrSkipsTakenPort(t *testing.T) {
	addr, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for range 2000 {
		got, err := Addr()
		if err != nil {
			t.Fatal(err)
		}
		if got == addr {
			t.Fatalf("Addr() returned %s, which is bound", got)
		}
	}
}

func TestInUse(t *testing.T) {
	l, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	defer l.Close()
	_, dup := net.Listen("tcp", l.Addr().String())
	for _, c := range []struct {
		err  error
		logs string
		want bool
	}{
		{dup, "", true},
		{fmt.Errorf("start: %w", syscall.EADDRINUSE), "", true},
		{nil, "strata: --http-listen: listen tcp 127.0.0.1:32769: bind: address already in use", true},
		{errors.New("connection refused"), "exit status 1", false},
		{nil, "", false},
	} {
		if got := InUse(c.err, c.logs); got != c.want {
			t.Errorf("InUse(%v, %q) = %v, want %v", c.err, c.logs, got, c.want)
		}
	}
}
