package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-stream/strata/internal/freeport"
)

// The harness runs the real strata binary as child processes, bound to
// 127.0.0.1 on free ports, and stops everything it started.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// strataBinary builds ./cmd/strata once per test run (with the race
// detector when the tests run with it) and returns its path.
func strataBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "strata")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/strata")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freeAddr returns a free 127.0.0.1 address (outside the ephemeral
// range, so that no outgoing connection takes it before the broker binds).
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// brokerProc is one strata serve process.
type brokerProc struct {
	t        *testing.T
	args     []string
	DataDir  string
	Addr     string // gRPC
	HTTPAddr string
	Env      []string // extra environment, e.g. AWS credentials
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	exitErr  error
	logs     *bytes.Buffer
	mu       sync.Mutex
}

// startBroker starts `strata serve` with a fresh data dir (unless dataDir
// is given) and waits until /readyz answers 200.
func startBroker(t *testing.T, dataDir string, extra ...string) *brokerProc {
	t.Helper()
	return startBrokerEnv(t, dataDir, nil, extra...)
}

// startBrokerEnv is startBroker with extra environment variables. If
// another process binds one of the picked ports first, it picks new ones
// (up to three times).
func startBrokerEnv(t *testing.T, dataDir string, env []string, extra ...string) *brokerProc {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	for attempt := 1; ; attempt++ {
		b := &brokerProc{t: t, DataDir: dataDir, Addr: freeAddr(t), HTTPAddr: freeAddr(t), Env: env}
		b.args = append([]string{"serve", "--data-dir", dataDir, "--listen", b.Addr, "--http-listen", b.HTTPAddr}, extra...)
		err := b.tryStart(60 * time.Second)
		if err == nil {
			t.Cleanup(func() { _ = b.Stop() })
			return b
		}
		_ = b.Stop()
		if attempt == 3 || !freeport.InUse(nil, b.Logs()) {
			t.Fatal(err)
		}
		t.Logf("broker lost a port race (%v); picking new ports", err)
	}
}

func (b *brokerProc) start() {
	b.t.Helper()
	if err := b.tryStart(60 * time.Second); err != nil {
		b.t.Fatal(err)
	}
}

// tryStart starts the process and waits until it is ready.
func (b *brokerProc) tryStart(timeout time.Duration) error {
	b.mu.Lock()
	b.logs = &bytes.Buffer{}
	b.cmd = exec.Command(strataBinary(b.t), b.args...)
	b.cmd.Stdout = syncWriter{&b.mu, b.logs}
	b.cmd.Stderr = syncWriter{&b.mu, b.logs}
	b.cmd.Env = append(append(os.Environ(), "GORACE=halt_on_error=1"), b.Env...)
	err := b.cmd.Start()
	b.mu.Unlock()
	if err != nil {
		b.cmd = nil
		return err
	}
	done, cmd := make(chan struct{}), b.cmd
	b.done = done
	go func() {
		err := cmd.Wait()
		b.mu.Lock()
		b.exitErr = err
		b.mu.Unlock()
		close(done)
	}()
	return b.ready(timeout)
}

type syncWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// Logs returns what the process printed so far.
func (b *brokerProc) Logs() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logs.String()
}

func (b *brokerProc) waitReady(timeout time.Duration) {
	b.t.Helper()
	if err := b.ready(timeout); err != nil {
		b.t.Fatal(err)
	}
}

// ready waits until /readyz answers 200, the process exits or timeout.
func (b *brokerProc) ready(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.HTTPAddr+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if b.exited() {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if b.exited() {
		return fmt.Errorf("broker at %s exited before it was ready; logs:\n%s", b.Addr, b.Logs())
	}
	return fmt.Errorf("broker at %s not ready after %s; logs:\n%s", b.Addr, timeout, b.Logs())
}

func (b *brokerProc) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the process to go.
func (b *brokerProc) Kill() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
	b.cmd = nil
}

// Stop sends SIGTERM and waits up to 20 s for a clean exit (then kills).
// It returns the process's exit error: nil for a clean exit.
func (b *brokerProc) Stop() error {
	if b.cmd == nil {
		return nil
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		b.t.Errorf("broker %s did not stop on SIGTERM within 20s; logs:\n%s", b.Addr, b.Logs())
		_ = b.cmd.Process.Signal(syscall.SIGKILL)
		<-b.done
	}
	b.cmd = nil
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.exitErr
}

// Restart starts the process again with the same arguments and data dir.
func (b *brokerProc) Restart() {
	b.t.Helper()
	b.start()
}

// Freeze stops the process with SIGSTOP (it keeps its sockets and state);
// Thaw resumes it with SIGCONT.
func (b *brokerProc) Freeze() { _ = b.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen process.
func (b *brokerProc) Thaw() { _ = b.cmd.Process.Signal(syscall.SIGCONT) }
