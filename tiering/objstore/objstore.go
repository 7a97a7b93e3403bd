// Package objstore is Strata's seam to object storage: one small interface
// with S3 (AWS S3 and MinIO), filesystem and in-memory backends, a
// conformance suite every backend passes (package objstoretest), a
// Prometheus wrapper and a fault injector for tests.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrNotExist is returned for a key that holds no object.
	ErrNotExist = errors.New("objstore: object does not exist")
	// ErrInvalidRange is returned by GetRange for a range that is empty,
	// negative or reaches past the end of the object.
	ErrInvalidRange = errors.New("objstore: invalid range")
	// ErrInvalidKey is returned for a key the store cannot hold: empty,
	// absolute, with empty, "." or ".." segments, or a prefix ending
	// without "/" where one is required.
	ErrInvalidKey = errors.New("objstore: invalid key")
	// ErrSlowDown is returned when the store throttles requests (S3 503
	// SlowDown). It is retriable after a backoff.
	ErrSlowDown = errors.New("objstore: slow down")
	// ErrUnavailable is returned when the store cannot be reached or fails
	// on its side. It is retriable.
	ErrUnavailable = errors.New("objstore: unavailable")
)

// IsRetriable reports whether an operation failing with err may succeed if
// tried again later.
func IsRetriable(err error) bool {
	return errors.Is(err, ErrSlowDown) || errors.Is(err, ErrUnavailable)
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Store is an object store holding immutable objects under string keys.
// Keys are '/'-separated paths of non-empty segments (not "." or ".."),
// without a leading '/'. A key must not also be a directory of other keys
// (objects at both a/b and a/b/c): file systems and MinIO cannot hold both,
// and Strata's keys, all of one depth per kind, never need it.
// Implementations are safe for concurrent use.
//
// Consistency: once Put returns nil, every later Get, GetRange, Stat and
// List observes the object (read-after-write, as S3 and MinIO provide), and
// once Delete returns nil none does.
//
// Slices passed to Put and returned by Get and GetRange are owned by the
// caller: the store neither keeps nor modifies them after the call.
type Store interface {
	// Put stores data under key, replacing any object there. It is atomic
	// (a reader sees the previous object or the whole new one, never a part
	// or a mix) and idempotent (putting the same bytes again leaves the
	// same object). Sealed objects are immutable by convention: Strata
	// never puts different bytes under a key it has put before.
	Put(ctx context.Context, key string, data []byte) error
	// Get returns the whole object, or ErrNotExist.
	Get(ctx context.Context, key string) ([]byte, error)
	// GetRange returns exactly length bytes at offset off, ErrNotExist, or
	// ErrInvalidRange when length <= 0, off < 0 or off+length exceeds the
	// object's size.
	GetRange(ctx context.Context, key string, off, length int64) ([]byte, error)
	// Stat returns the object's size and modification time, or ErrNotExist.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List calls fn for every object whose key starts with prefix, in
	// lexical key order, and stops at fn's first error, which it returns.
	// An empty prefix lists everything. Objects put or deleted during the
	// listing may or may not be seen.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes the object at key. Deleting a key that holds no
	// object succeeds (idempotent).
	Delete(ctx context.Context, key string) error
}

// ValidateKey checks that key is a valid object key.
func ValidateKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q has an empty, \".\" or \"..\" segment", ErrInvalidKey, key)
		}
	}
	for _, c := range key {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("%w: %q has a control character or backslash", ErrInvalidKey, key)
		}
	}
	return nil
}

// validatePrefix checks a List prefix: empty, or a key prefix without a
// leading '/' and without "." or ".." segments.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if strings.HasPrefix(prefix, "/") {
		return fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(prefix, "/"), "/") {
		if seg == "." || seg == ".." || seg == "" {
			return fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
		}
	}
	return nil
}

// checkRange validates a range against an object of size bytes.
func checkRange(key string, off, length, size int64) error {
	if length <= 0 || off < 0 || off > size || length > size-off {
		return fmt.Errorf("%w: [%d, +%d) of %s (%d bytes)", ErrInvalidRange, off, length, key, size)
	}
	return nil
}
