// Package miniotest runs a real MinIO server for tests: a child process on
// free 127.0.0.1 ports with its data in a temporary directory, stopped
// when the test ends. The binary comes from STRATA_MINIO_BIN (make test sets
// it) or the pinned version `make tools` installs; a test that needs MinIO
// fails, never skips, when neither is there.
package miniotest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/strata-stream/strata/internal/freeport"
)

const (
	// AccessKey and SecretKey are the server's root credentials.
	AccessKey = "strata-test"
	SecretKey = "strata-test-secret"
)

// Server is a running (or stopped) MinIO server.
type Server struct {
	t       testing.TB
	bin     string
	dir     string
	addr    string
	console string
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	logs    *os.File
}

// Binary finds the MinIO server binary.
func Binary() (string, error) {
	if p := os.Getenv("STRATA_MINIO_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("STRATA_MINIO_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	home, _ := os.UserHomeDir()
	matches, _ := filepath.Glob(filepath.Join(home, ".cache", "strata-tools", "minio-*", "minio"))
	if len(matches) == 0 {
		return "", fmt.Errorf("no MinIO server binary: run `make tools` (or the tests through `make test`), or set STRATA_MINIO_BIN")
	}
	sort.Strings(matches)
	return matches[len(matches)-1], nil
}

func freeAddr(t testing.TB) string {
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// Start runs a MinIO server and waits until it is live. t.Cleanup stops it.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), addr: freeAddr(t), console: freeAddr(t)}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Endpoint is the server's URL, e.g. http://127.0.0.1:40123.
func (s *Server) Endpoint() string { return "http://" + s.addr }

// Addr is host:port.
func (s *Server) Addr() string { return s.addr }

// Restart starts the server (again), on the same port and data directory.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return
	}
	logs, err := os.OpenFile(filepath.Join(s.dir, "minio.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.addr, "--console-address", s.console, filepath.Join(s.dir, "data"))
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey, "MINIO_BROWSER=off", "MINIO_UPDATE=off")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		logs.Close()
		s.t.Fatalf("start minio: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done, s.logs = cmd, done, logs
	s.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		// /minio/health/ready answers before the object layer is up
		// (requests then fail with XMinioServerNotInitialized);
		// /minio/health/cluster only once it has write quorum.
		if healthy(s.Endpoint()+"/minio/health/ready") && healthy(s.Endpoint()+"/minio/health/cluster") {
			return
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(s.dir, "minio.log"))
			s.t.Fatalf("minio exited at start:\n%s", b)
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.t.Fatalf("minio at %s not ready after 60s", s.addr)
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s). Its data stays
// for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.logs.Close()
	s.cmd = nil
}

// Client returns an independent minio-go client of the server, to check
// what is really in a bucket.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.addr, &minio.Options{Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), Secure: false})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// MakeBucket creates a bucket.
func (s *Server) MakeBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
}

// healthy reports whether url answers 200 OK.
func healthy(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
