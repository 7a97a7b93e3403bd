package objstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeBack starts write-back of f's bytes [off, off+n) and waits for it,
// without a journal commit (sync_file_range). Put calls it per chunk so
// that an object never sits in the page cache as one large dirty extent:
// on ext4 (data=ordered) the next fsync of any file on the disk - a
// partition log's group commit - commits the journal and must first
// write every dirty block allocated in it, so a 64 MiB object flushed at
// the end would stall that fsync for the whole object.
//
// The range, clean once written back, is then dropped from the page cache
// (POSIX_FADV_DONTNEED): a store that only grows would otherwise fill all
// free memory with objects that are rarely read, and on a VM whose free
// memory goes back to the host every page cache page taken anew costs a
// page fault in the host (docs/operations.md, "Page cache of uploaded
// segments"). Reads of the object go to the disk.
func writeBack(f *os.File, off, n int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SyncFileRange(int(fd), off, n,
			unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		if serr == nil {
			serr = unix.Fadvise(int(fd), off, n, unix.FADV_DONTNEED)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
