// Package pagecache tells how much of a file is in the operating system's
// page cache: for tests of the code that drops pages it no longer needs
// (segment.Log.DropCache, the file object store).
package pagecache

import (
	"errors"
	"os"
	"testing"
)

// ErrUnsupported is returned where residency cannot be read (not Linux).
var ErrUnsupported = errors.New("pagecache: page residency is not readable on this system")

// Resident returns how many of the file's pages are in the page cache,
// and how many pages it has.
func Resident(path string) (resident, pages int, err error) { return resident0(path) }

// Droppable returns nil when the page cache of files in dir can be
// dropped, and why not otherwise: on tmpfs or ramfs the pages are the
// files, so POSIX_FADV_DONTNEED leaves them and they stay resident (a test
// that checks a drop has nothing to check there).
func Droppable(dir string) error { return droppable0(dir) }

// DiskDir returns a new directory, removed when the test ends, whose
// files' pages can be dropped: t.TempDir() when TMPDIR allows it (it is
// not tmpfs), else one under $STRATA_DISK_TMPDIR or, unset, under the
// test's working directory (the package's source directory, on the
// checkout's disk). Where neither can, the test fails saying so: a test
// of dropping pages has no other place to run, and skipping would hide
// that it never ran.
func DiskDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if Droppable(dir) == nil {
		return dir
	}
	base := os.Getenv("STRATA_DISK_TMPDIR")
	if base == "" {
		base = "."
	} else if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(base, ".pagecache-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := Droppable(dir); err != nil {
		t.Fatalf("pages cannot be dropped in TMPDIR or in %s (%v): set STRATA_DISK_TMPDIR to a directory on a disk", base, err)
	}
	return dir
}
