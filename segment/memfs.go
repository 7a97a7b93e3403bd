package segment

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// ErrInjected is the error MemFS returns for an injected fault.
var ErrInjected = errors.New("segment: injected fault")

// MemFS is an in-memory FS for tests that models what a crash keeps: the
// bytes of a file up to its last Sync and the directory entries up to the
// last SyncDir. Faults can be armed: fail the next write (after writing a
// part of it), fail the next sync. It is safe for concurrent use.
type MemFS struct {
	mu struct {
		sync.Mutex
		files               map[string]*memNode // the live namespace
		durable             map[string]*memNode // the namespace as of the last SyncDir per directory
		failWrite, failSync int                 // fail the n-th next write / sync (1 = the next one)
		tornWrite           bool                // a failed write still writes half of its bytes
		writes, syncs       int                 // counters, for tests
		syncDelay           time.Duration
	}
}

// memNode is one file's contents. Guarded by MemFS.mu.
type memNode struct {
	data   []byte
	synced []byte
}

var _ FS = (*MemFS)(nil)

// NewMemFS returns an empty MemFS.
func NewMemFS() *MemFS {
	m := &MemFS{}
	m.mu.files = map[string]*memNode{}
	m.mu.durable = map[string]*memNode{}
	return m
}

// FailWrite arms a fault: the n-th next WriteAt (1 = the next) fails with
// ErrInjected. When torn is true it first writes half of its bytes.
func (m *MemFS) FailWrite(n int, torn bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.failWrite, m.mu.tornWrite = n, torn
}

// FailSync arms a fault: the n-th next File.Sync (1 = the next) fails with
// ErrInjected and syncs nothing.
func (m *MemFS) FailSync(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.failSync = n
}

// SetSyncDelay makes every File.Sync take at least d, like a real disk.
func (m *MemFS) SetSyncDelay(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.syncDelay = d
}

// Syncs returns how many File.Sync calls succeeded.
func (m *MemFS) Syncs() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.syncs
}

// CrashOptions choose what a simulated crash keeps beyond the synced state.
type CrashOptions struct {
	// Rand, when set, keeps a random prefix of each file's unsynced bytes
	// (a torn write reaching the disk) and sometimes garbles its last
	// kept byte. When nil, every unsynced byte is lost.
	Rand *rand.Rand
}

// Crash returns a new MemFS holding what a machine crash would leave: the
// durable directory entries, each with its synced bytes (plus, with
// opts.Rand, part of its unsynced bytes). m is unchanged and should no
// longer be used by the code under test.
func (m *MemFS) Crash(opts CrashOptions) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := NewMemFS()
	for name, n := range m.mu.durable {
		data := append([]byte(nil), n.synced...)
		if r := opts.Rand; r != nil && len(n.data) > len(n.synced) && sharesPrefix(n.data, n.synced) {
			extra := n.data[len(n.synced):]
			k := r.IntN(len(extra) + 1)
			data = append(data, extra[:k]...)
			if k > 0 && r.IntN(4) == 0 {
				data[len(data)-1] ^= 0xff
			}
		}
		nn := &memNode{data: data, synced: append([]byte(nil), data...)}
		out.mu.files[name] = nn
		out.mu.durable[name] = nn
	}
	return out
}

func sharesPrefix(data, prefix []byte) bool {
	return len(data) >= len(prefix) && string(data[:len(prefix)]) == string(prefix)
}

// ReadFile returns a copy of the live contents of name, for tests.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.mu.files[filepath.Clean(name)]
	if !ok {
		return nil, fmt.Errorf("read %s: %w", name, fs.ErrNotExist)
	}
	return append([]byte(nil), n.data...), nil
}

// WriteFile replaces the contents of name, durably, for tests that damage
// files between a close and an open.
func (m *MemFS) WriteFile(name string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := &memNode{data: append([]byte(nil), data...), synced: append([]byte(nil), data...)}
	m.mu.files[filepath.Clean(name)] = n
	m.mu.durable[filepath.Clean(name)] = n
}

// OpenFile implements FS.
func (m *MemFS) OpenFile(name string, create bool) (File, error) {
	name = filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.mu.files[name]
	if !ok {
		if !create {
			return nil, fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
		}
		n = &memNode{}
		m.mu.files[name] = n
	}
	return &memFile{fs: m, node: n, name: name}, nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mu.files, filepath.Clean(name))
	return nil
}

// MkdirAll implements FS. Directories are implicit in MemFS.
func (m *MemFS) MkdirAll(string) error { return nil }

// ReadDir implements FS.
func (m *MemFS) ReadDir(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for name := range m.mu.files {
		if filepath.Dir(name) == dir {
			names = append(names, filepath.Base(name))
		}
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir implements FS.
func (m *MemFS) SyncDir(dir string) error {
	dir = filepath.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.mu.durable {
		if filepath.Dir(name) == dir {
			if _, ok := m.mu.files[name]; !ok {
				delete(m.mu.durable, name)
			}
		}
	}
	for name, n := range m.mu.files {
		if filepath.Dir(name) == dir {
			m.mu.durable[name] = n
		}
	}
	return nil
}

type memFile struct {
	fs     *MemFS
	node   *memNode
	name   string
	closed bool
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, fs.ErrClosed
	}
	if off >= int64(len(f.node.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.node.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, fs.ErrClosed
	}
	f.fs.mu.writes++
	if f.fs.mu.failWrite > 0 {
		f.fs.mu.failWrite--
		if f.fs.mu.failWrite == 0 {
			if f.fs.mu.tornWrite {
				f.writeLocked(p[:len(p)/2], off)
			}
			return 0, fmt.Errorf("write %s: %w", f.name, ErrInjected)
		}
	}
	f.writeLocked(p, off)
	return len(p), nil
}

func (f *memFile) writeLocked(p []byte, off int64) {
	if end := off + int64(len(p)); end > int64(len(f.node.data)) {
		f.node.data = append(f.node.data, make([]byte, end-int64(len(f.node.data)))...)
	}
	copy(f.node.data[off:], p)
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	d := f.fs.mu.syncDelay
	f.fs.mu.Unlock()
	time.Sleep(d) // outside the lock: writes proceed meanwhile
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return fs.ErrClosed
	}
	if f.fs.mu.failSync > 0 {
		f.fs.mu.failSync--
		if f.fs.mu.failSync == 0 {
			return fmt.Errorf("sync %s: %w", f.name, ErrInjected)
		}
	}
	f.fs.mu.syncs++
	f.node.synced = append(f.node.synced[:0], f.node.data...)
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return fs.ErrClosed
	}
	if size <= int64(len(f.node.data)) {
		f.node.data = f.node.data[:size:size]
	} else {
		f.node.data = append(f.node.data, make([]byte, size-int64(len(f.node.data)))...)
	}
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return int64(len(f.node.data)), nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.closed = true
	return nil
}
