package pagecache

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A file just written is cached; after POSIX_FADV_DONTNEED (it is clean
// once fsynced) none of it is. Linux only, by the file's name.
func TestResidentFollowsThePageCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
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
