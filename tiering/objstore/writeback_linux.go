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
func writeBack(f *os.File, off, n int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SyncFileRange(int(fd), off, n,
			unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
	})
	if err != nil {
		return err
	}
	return serr
}
