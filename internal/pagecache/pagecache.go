// Package pagecache tells how much of a file is in the operating system's
// page cache: for tests of the code that drops pages it no longer needs
// (segment.Log.DropCache, the file object store).
package pagecache

import "errors"

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
