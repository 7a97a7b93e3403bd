package segment

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync makes f's written bytes durable: fdatasync, which skips
// metadata the data does not need (mtime).
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// dropCache asks the kernel to drop f's clean pages from the page cache
// (POSIX_FADV_DONTNEED over the whole file); dirty ones stay until written
// back.
func dropCache(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = unix.Fadvise(int(fd), 0, 0, unix.FADV_DONTNEED) }); err != nil {
		return err
	}
	return ferr
}
