package segment

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// FS is the file-system seam of the log: only what the log uses. The real
// implementation is OSFS; MemFS is a fault-injecting fake for tests.
//
// Durability contract, as on Linux: bytes written to a File survive a crash
// only after File.Sync returns nil; a created, renamed or removed directory
// entry survives a crash only after SyncDir of its directory returns nil.
type FS interface {
	// OpenFile opens name for reading and writing, creating it when create
	// is true and it does not exist. It returns an error wrapping
	// fs.ErrNotExist when create is false and the file is missing.
	OpenFile(name string, create bool) (File, error)
	// Remove deletes a file. Removing a missing file is not an error.
	Remove(name string) error
	// MkdirAll creates dir and its parents.
	MkdirAll(dir string) error
	// ReadDir lists the names of the regular files in dir, sorted.
	ReadDir(dir string) ([]string, error)
	// SyncDir makes the entries of dir durable.
	SyncDir(dir string) error
}

// File is an open file. ReadAt may be called concurrently with WriteAt to
// a disjoint range; everything else is called by one goroutine at a time.
type File interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes every byte written so far durable (fdatasync).
	Sync() error
	// Truncate cuts or extends the file to size bytes.
	Truncate(size int64) error
	// Size is the current size of the file.
	Size() (int64, error)
	Close() error
}

// OSFS is the FS of the operating system.
type OSFS struct{}

var _ FS = OSFS{}

// OpenFile implements FS.
func (OSFS) OpenFile(name string, create bool) (File, error) {
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE
	}
	f, err := os.OpenFile(name, flag, 0o644)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// Remove implements FS.
func (OSFS) Remove(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// MkdirAll implements FS.
func (OSFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

// ReadDir implements FS.
func (OSFS) ReadDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir implements FS.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// cacheDropper is implemented by Files whose pages in the operating
// system's page cache can be dropped (OSFS on Linux).
type cacheDropper interface {
	// DropCache asks the kernel to drop the file's clean cached pages:
	// the data is unaffected, later reads of it go to the disk.
	DropCache() error
}

type osFile struct{ *os.File }

func (f osFile) Sync() error { return datasync(f.File) }

func (f osFile) DropCache() error { return dropCache(f.File) }

func (f osFile) Size() (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
