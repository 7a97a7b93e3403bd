package pagecache

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A file just written is cached; after POSIX_FADV_DONTNEED (it is clean
// once fsynced) none of it is. Linux only, by the file's name; in a
// directory from DiskDir (not tmpfs).
func TestResidentFollowsThePageCache(t *testing.T) {
	dir := DiskDir(t)
	path := filepath.Join(dir, "f")
	data := make([]byte, 64*os.Getpagesize())
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	n, pages, err := Resident(path)
	if err != nil || pages != 64 || n < 32 {
		t.Fatalf("Resident after write = %d of %d (%v), want most of 64", n, pages, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if n, _, err := Resident(path); err != nil || n != 0 {
		t.Fatalf("Resident after DONTNEED = %d (%v), want 0", n, err)
	}
}

// Droppable refuses tmpfs (/dev/shm on Linux), whose pages are the files.
func TestDroppableRefusesTmpfs(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Fatalf("/dev/shm: %v (type %#x): this test needs the tmpfs that Linux distributions (and this project's CI machines) mount there", err, st.Type)
	}
	if err := Droppable("/dev/shm"); err == nil {
		t.Fatal("Droppable(/dev/shm) = nil, want the tmpfs error")
	}
}
