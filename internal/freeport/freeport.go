// Package freeport picks free TCP ports on 127.0.0.1 for servers that
// must be named before they listen: the embedded etcd's URLs, and the
// MinIO and broker processes the tests start.
//
// Listening on ":0" and closing the listener leaves a window in which the
// port is free again, and ":0" ports come from the kernel's ephemeral
// range, which every outgoing connection on the machine draws from too:
// in CI a client connection of another test took such a port before the
// broker it was picked for bound it. Ports from this package come from
// outside the ephemeral range, at random, checked by binding them, so
// only another explicit pick (one in tens of thousands) can race.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoPort is returned when no free port was found.
var ErrNoPort = errors.New("freeport: no free port on 127.0.0.1")

// Outside the ephemeral range, ports from minPort up are used; below it
// are the well-known and commonly configured ones (etcd's 2379, ...).
const (
	minPort  = 10000
	maxPort  = 65535
	attempts = 200
)

// Addr returns a free "127.0.0.1:port" outside the ephemeral port range.
// Where that range cannot be read, or leaves no room, it falls back to a
// port the kernel picks.
func Addr() (string, error) {
	lo, hi := ephemeralRange()
	var ranges [][2]int
	if lo-1 >= minPort {
		ranges = append(ranges, [2]int{minPort, lo - 1})
	}
	if hi+1 <= maxPort {
		ranges = append(ranges, [2]int{hi + 1, maxPort})
	}
	if len(ranges) == 0 {
		return kernelPick()
	}
	total := 0
	for _, r := range ranges {
		total += r[1] - r[0] + 1
	}
	for range attempts {
		n := rand.IntN(total)
		port := 0
		for _, r := range ranges {
			if size := r[1] - r[0] + 1; n < size {
				port = r[0] + n
				break
			} else {
				n -= size
			}
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		return addr, nil
	}
	return "", fmt.Errorf("%w: %d random ports outside %d-%d were all taken", ErrNoPort, attempts, lo, hi)
}

// InUse reports whether err (or a process's log text) says an address was
// already in use: a lost race for a port, worth one more pick.
func InUse(err error, logs string) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(logs, "address already in use")
}

// ephemeralRange is the kernel's range for ":0" and outgoing ports (Linux
// default 32768-60999; the IANA range 49152-65535 elsewhere).
func ephemeralRange() (lo, hi int) {
	lo, hi = 49152, 65535
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	l, err1 := strconv.Atoi(f[0])
	h, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || l > h {
		return lo, hi
	}
	return l, h
}

func kernelPick() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoPort, err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
