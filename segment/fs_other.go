//go:build !linux

package segment

import "os"

// datasync makes f's written bytes durable where fdatasync is not
// available: os.File.Sync (F_FULLFSYNC on macOS).
func datasync(f *os.File) error { return f.Sync() }

// dropCache does nothing where the page cache cannot be advised.
func dropCache(*os.File) error { return nil }
