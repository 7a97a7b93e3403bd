package segment

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync makes f's written bytes durable: fdatasync, which skips
// metadata the data does not need (mtime).
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
