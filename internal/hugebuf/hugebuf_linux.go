package hugebuf

import "golang.org/x/sys/unix"

// hugePage is the size of a transparent huge page on the platforms this
// runs on (x86-64, arm64 with 4 KiB pages).
const hugePage = 2 << 20

// alloc maps n bytes, rounded up to whole huge pages, of anonymous memory
// and advises huge pages for them (a kernel with transparent huge pages
// off ignores the advice). It returns nil if the mapping fails.
func alloc(n int) []byte {
	size := (n + hugePage - 1) / hugePage * hugePage
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil
	}
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	return b
}
