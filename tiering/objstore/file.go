package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// tmpDir holds Put's temporary files, under the root (one file system, so
// the final rename is atomic). Keys may not start with it.
const tmpDir = ".tmp"

// File is a Store in a local directory: the embedded default, and what a
// single-node deployment without S3 uses. An object is a file at
// <root>/<key>. Put writes a temporary file, fsyncs it, renames it into
// place and fsyncs the directory, so an object is whole or absent after a
// crash.
type File struct {
	root string
	// chunk is putChunk but in benchmarks comparing against one write.
	chunk int
}

// NewFile returns a store in dir, creating it.
func NewFile(dir string) (*File, error) {
	if err := os.MkdirAll(filepath.Join(dir, tmpDir), 0o755); err != nil {
		return nil, fmt.Errorf("objstore: create %s: %w", dir, err)
	}
	return &File{root: dir, chunk: putChunk}, nil
}

func (f *File) path(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	if key == tmpDir || strings.HasPrefix(key, tmpDir+"/") {
		return "", fmt.Errorf("%w: %q is reserved by the file store", ErrInvalidKey, key)
	}
	return filepath.Join(f.root, filepath.FromSlash(key)), nil
}

func (f *File) Put(ctx context.Context, key string, data []byte) error {
	p, err := f.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(filepath.Join(f.root, tmpDir), "put-*")
	if err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := writeChunked(tmp, data, f.chunk); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("objstore: put %s: fsync: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	// A concurrent Delete may remove the (then empty) directory between
	// MkdirAll and the rename: recreate it and try again.
	for attempt := 0; ; attempt++ {
		err = os.Rename(tmp.Name(), p)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			break
		}
		if err = os.MkdirAll(dir, 0o755); err != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	done = true
	return syncDir(dir)
}

// putChunk is how many bytes of an object Put writes before it waits for
// them to reach the disk (writeBack): the most a concurrent fsync of
// another file can find dirty of it.
const putChunk = 256 << 10

// writeChunked writes data to f chunk bytes at a time, each written back
// before the next.
func writeChunked(f *os.File, data []byte, chunk int) error {
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		if _, err := f.Write(data[off:end]); err != nil {
			return err
		}
		if err := writeBack(f, int64(off), int64(end-off)); err != nil {
			return fmt.Errorf("write-back: %w", err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("objstore: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("objstore: fsync dir %s: %w", dir, err)
	}
	return nil
}

// notExist converts a missing file (or a directory where an object was
// expected) into ErrNotExist.
func notExist(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errIsDir) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: %s", ErrNotExist, key)
	}
	return fmt.Errorf("objstore: %s: %w", key, err)
}

var errIsDir = errors.New("is a directory")

func (f *File) open(ctx context.Context, key string) (*os.File, fs.FileInfo, error) {
	p, err := f.path(key)
	if err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	fh, err := os.Open(p)
	if err != nil {
		return nil, nil, notExist(key, err)
	}
	st, err := fh.Stat()
	if err == nil && st.IsDir() {
		err = errIsDir
	}
	if err != nil {
		fh.Close()
		return nil, nil, notExist(key, err)
	}
	return fh, st, nil
}

func (f *File) Get(ctx context.Context, key string) ([]byte, error) {
	fh, _, err := f.open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(fh)
	if err != nil {
		return nil, fmt.Errorf("objstore: get %s: %w", key, err)
	}
	return b, nil
}

func (f *File) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	fh, st, err := f.open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	if err := checkRange(key, off, length, st.Size()); err != nil {
		return nil, err
	}
	b := make([]byte, length)
	if _, err := fh.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("objstore: get %s [%d, +%d): %w", key, off, length, err)
	}
	return b, nil
}

func (f *File) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	fh, st, err := f.open(ctx, key)
	if err != nil {
		return ObjectInfo{}, err
	}
	fh.Close()
	return ObjectInfo{Key: key, Size: st.Size(), ModTime: st.ModTime()}, nil
}

func (f *File) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	// Walk from the deepest directory the prefix names, then filter: keys
	// sort differently from a directory walk ("a-b" < "a/b"), so collect
	// and sort.
	start := f.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(f.root, filepath.FromSlash(prefix[:i]))
	}
	var infos []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(f.root, p)
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if key == tmpDir {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			return err
		}
		infos = append(infos, ObjectInfo{Key: key, Size: st.Size(), ModTime: st.ModTime()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("objstore: list %q: %w", prefix, err)
	}
	return emitSorted(ctx, infos, fn)
}

func (f *File) Delete(ctx context.Context, key string) error {
	p, err := f.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || err == nil && st.IsDir() {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	f.removeEmptyParents(key)
	return nil
}

// removeEmptyParents removes the directories a delete emptied, climbing
// until one is not empty (best effort: a concurrent Put recreates what it
// needs).
func (f *File) removeEmptyParents(key string) {
	for dir := path.Dir(key); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if os.Remove(filepath.Join(f.root, filepath.FromSlash(dir))) != nil {
			return
		}
	}
}
