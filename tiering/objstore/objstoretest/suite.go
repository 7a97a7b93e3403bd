// Package objstoretest is the conformance suite every objstore.Store
// implementation passes: the memory and file backends, and S3 against a
// real MinIO server.
package objstoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/strata-stream/strata/tiering/objstore"
)

// Run runs the suite. newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s objstore.Store)
	}{
		{"PutGet", testPutGet},
		{"NotExist", testNotExist},
		{"CallerOwnsSlices", testCallerOwnsSlices},
		{"GetRange", testGetRange},
		{"List", testList},
		{"Delete", testDelete},
		{"InvalidKeys", testInvalidKeys},
		{"LargeObject", testLargeObject},
		{"AtomicOverwrite", testAtomicOverwrite},
		{"CanceledContext", testCanceledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func mustPut(t *testing.T, s objstore.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(ctx(t), key, data); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func mustGet(t *testing.T, s objstore.Store, key string) []byte {
	t.Helper()
	b, err := s.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	return b
}

func testPutGet(t *testing.T, s objstore.Store) {
	data := random(1000)
	mustPut(t, s, "a/b/obj", data)
	if got := mustGet(t, s, "a/b/obj"); !bytes.Equal(got, data) {
		t.Fatal("Get returned different bytes")
	}
	info, err := s.Stat(ctx(t), "a/b/obj")
	if err != nil || info.Size != 1000 || info.Key != "a/b/obj" || info.ModTime.IsZero() {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
	// Idempotent: the same bytes again.
	mustPut(t, s, "a/b/obj", data)
	if got := mustGet(t, s, "a/b/obj"); !bytes.Equal(got, data) {
		t.Fatal("second Put of the same bytes changed the object")
	}
	// Overwrite.
	other := random(10)
	mustPut(t, s, "a/b/obj", other)
	if got := mustGet(t, s, "a/b/obj"); !bytes.Equal(got, other) {
		t.Fatal("overwrite not visible")
	}
	// Empty object.
	mustPut(t, s, "empty", nil)
	if got := mustGet(t, s, "empty"); len(got) != 0 {
		t.Fatalf("empty object read back as %d bytes", len(got))
	}
	if info, err := s.Stat(ctx(t), "empty"); err != nil || info.Size != 0 {
		t.Fatalf("Stat of an empty object = %+v, %v", info, err)
	}
}

func testNotExist(t *testing.T, s objstore.Store) {
	mustPut(t, s, "dir/present", []byte("x"))
	for _, key := range []string{"absent", "dir/absent", "dir", "dir/present/below"} {
		if _, err := s.Get(ctx(t), key); !errors.Is(err, objstore.ErrNotExist) {
			t.Errorf("Get %s: %v, want ErrNotExist", key, err)
		}
		if _, err := s.GetRange(ctx(t), key, 0, 1); !errors.Is(err, objstore.ErrNotExist) {
			t.Errorf("GetRange %s: %v, want ErrNotExist", key, err)
		}
		if _, err := s.Stat(ctx(t), key); !errors.Is(err, objstore.ErrNotExist) {
			t.Errorf("Stat %s: %v, want ErrNotExist", key, err)
		}
	}
}

func testCallerOwnsSlices(t *testing.T, s objstore.Store) {
	data := []byte("original")
	mustPut(t, s, "k", data)
	data[0] = 'X'
	got := mustGet(t, s, "k")
	if string(got) != "original" {
		t.Fatalf("changing the slice after Put changed the object: %q", got)
	}
	got[0] = 'Y'
	r, err := s.GetRange(ctx(t), "k", 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	r[1] = 'Z'
	if again := mustGet(t, s, "k"); string(again) != "original" {
		t.Fatalf("changing returned slices changed the object: %q", again)
	}
}

func testGetRange(t *testing.T, s objstore.Store) {
	data := random(10000)
	mustPut(t, s, "r", data)
	for _, r := range [][2]int64{{0, 10000}, {0, 1}, {9999, 1}, {1234, 5678}, {5000, 5000}} {
		got, err := s.GetRange(ctx(t), "r", r[0], r[1])
		if err != nil {
			t.Fatalf("GetRange %v: %v", r, err)
		}
		if !bytes.Equal(got, data[r[0]:r[0]+r[1]]) {
			t.Fatalf("GetRange %v returned different bytes", r)
		}
	}
	for _, r := range [][2]int64{{0, 0}, {-1, 5}, {0, -1}, {9999, 2}, {10000, 1}, {20000, 10}} {
		if _, err := s.GetRange(ctx(t), "r", r[0], r[1]); !errors.Is(err, objstore.ErrInvalidRange) {
			t.Errorf("GetRange %v: %v, want ErrInvalidRange", r, err)
		}
	}
}

func list(t *testing.T, s objstore.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := s.List(ctx(t), prefix, func(i objstore.ObjectInfo) error {
		keys = append(keys, fmt.Sprintf("%s:%d", i.Key, i.Size))
		return nil
	}); err != nil {
		t.Fatalf("List %q: %v", prefix, err)
	}
	return keys
}

func testList(t *testing.T, s objstore.Store) {
	// Keys that sort differently from a directory walk ("a-b" < "a/b").
	for _, k := range []string{"t/a/b/c", "t/a/bb", "t/ab", "t/a-b", "t/a/c", "u/x", "t/b"} {
		mustPut(t, s, k, []byte(k))
	}
	cases := map[string]string{
		"":      "[t/a-b:5 t/a/b/c:7 t/a/bb:6 t/a/c:5 t/ab:4 t/b:3 u/x:3]",
		"t/":    "[t/a-b:5 t/a/b/c:7 t/a/bb:6 t/a/c:5 t/ab:4 t/b:3]",
		"t/a":   "[t/a-b:5 t/a/b/c:7 t/a/bb:6 t/a/c:5 t/ab:4]",
		"t/a/":  "[t/a/b/c:7 t/a/bb:6 t/a/c:5]",
		"t/a/b": "[t/a/b/c:7 t/a/bb:6]",
		"v/":    "[]",
		"t/zz":  "[]",
	}
	for prefix, want := range cases {
		if got := fmt.Sprint(list(t, s, prefix)); got != want {
			t.Errorf("List %q = %s, want %s", prefix, got, want)
		}
	}
	stop := errors.New("stop")
	n := 0
	err := s.List(ctx(t), "t/", func(objstore.ObjectInfo) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("List did not stop at fn's error: %v after %d", err, n)
	}
}

func testDelete(t *testing.T, s objstore.Store) {
	mustPut(t, s, "d/1", []byte("1"))
	mustPut(t, s, "d/2", []byte("2"))
	if err := s.Delete(ctx(t), "d/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx(t), "d/1"); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatalf("Get after Delete: %v", err)
	}
	for range 2 {
		if err := s.Delete(ctx(t), "d/1"); err != nil {
			t.Fatalf("Delete of a deleted key: %v", err)
		}
	}
	if err := s.Delete(ctx(t), "never/was"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if got := fmt.Sprint(list(t, s, "d/")); got != "[d/2:1]" {
		t.Fatalf("List after Delete = %s", got)
	}
	mustPut(t, s, "d/1", []byte("again"))
	if got := mustGet(t, s, "d/1"); string(got) != "again" {
		t.Fatalf("Put after Delete: %q", got)
	}
}

func testInvalidKeys(t *testing.T, s objstore.Store) {
	for _, key := range []string{"", "/abs", "a//b", "a/../b", "./a", "a/", "..", "a\\b", "a\x00b"} {
		if err := s.Put(ctx(t), key, []byte("x")); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Put %q: %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Get(ctx(t), key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Get %q: %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx(t), key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Delete %q: %v, want ErrInvalidKey", key, err)
		}
	}
	if err := s.List(ctx(t), "../", func(objstore.ObjectInfo) error { return nil }); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Errorf("List ../: %v, want ErrInvalidKey", err)
	}
}

// testLargeObject crosses the S3 backend's multipart threshold.
func testLargeObject(t *testing.T, s objstore.Store) {
	data := random(21<<20 + 12345)
	mustPut(t, s, "big/object", data)
	if got := mustGet(t, s, "big/object"); !bytes.Equal(got, data) {
		t.Fatal("large object read back different")
	}
	off := int64(16<<20 - 100) // across a part boundary (8 MiB parts in the S3 test)
	got, err := s.GetRange(ctx(t), "big/object", off, 200)
	if err != nil || !bytes.Equal(got, data[off:off+200]) {
		t.Fatalf("range across a part boundary: %v", err)
	}
	if info, err := s.Stat(ctx(t), "big/object"); err != nil || info.Size != int64(len(data)) {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
}

// testAtomicOverwrite: readers racing an overwrite see the old object or
// the new one, whole, never a mix or a part.
func testAtomicOverwrite(t *testing.T, s objstore.Store) {
	const size = 1 << 20
	a, b := bytes.Repeat([]byte{'a'}, size), bytes.Repeat([]byte{'b'}, size)
	mustPut(t, s, "atomic", a)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				select {
				case <-stop:
					return
				default:
				}
				got, err := s.Get(ctx(t), "atomic")
				if err != nil {
					errs <- fmt.Errorf("get during overwrite: %w", err)
					return
				}
				if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
					errs <- fmt.Errorf("read a torn or mixed object of %d bytes", len(got))
					return
				}
			}
		}()
	}
	for i := range 20 {
		data := a
		if i%2 == 0 {
			data = b
		}
		mustPut(t, s, "atomic", data)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testCanceledContext(t *testing.T, s objstore.Store) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Put(c, "canceled", []byte("x")); err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
	if _, err := s.Get(c, "canceled"); err == nil {
		t.Fatal("Get with a canceled context succeeded")
	}
}
