package objstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Mem is an in-memory Store for unit tests.
type Mem struct {
	now func() time.Time
	mu  struct {
		sync.RWMutex
		objects map[string]memObject
	}
}

type memObject struct {
	data []byte
	mod  time.Time
}

// NewMem returns an empty in-memory store.
func NewMem() *Mem {
	m := &Mem{now: time.Now}
	m.mu.objects = map[string]memObject{}
	return m
}

func (m *Mem) Put(ctx context.Context, key string, data []byte) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	obj := memObject{data: append([]byte(nil), data...), mod: m.now()}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.objects[key] = obj
	return nil
}

func (m *Mem) get(ctx context.Context, key string) (memObject, error) {
	if err := ValidateKey(key); err != nil {
		return memObject{}, err
	}
	if err := ctx.Err(); err != nil {
		return memObject{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	obj, ok := m.mu.objects[key]
	if !ok {
		return obj, fmt.Errorf("%w: %s", ErrNotExist, key)
	}
	return obj, nil
}

func (m *Mem) Get(ctx context.Context, key string) ([]byte, error) {
	obj, err := m.get(ctx, key)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), obj.data...), nil
}

func (m *Mem) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	obj, err := m.get(ctx, key)
	if err != nil {
		return nil, err
	}
	if err := checkRange(key, off, length, int64(len(obj.data))); err != nil {
		return nil, err
	}
	return append([]byte(nil), obj.data[off:off+length]...), nil
}

func (m *Mem) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	obj, err := m.get(ctx, key)
	if err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{Key: key, Size: int64(len(obj.data)), ModTime: obj.mod}, nil
}

func (m *Mem) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	m.mu.RLock()
	var infos []ObjectInfo
	for k, o := range m.mu.objects {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, ObjectInfo{Key: k, Size: int64(len(o.data)), ModTime: o.mod})
		}
	}
	m.mu.RUnlock()
	return emitSorted(ctx, infos, fn)
}

// emitSorted calls fn for infos in key order, stopping at fn's first error
// or when ctx ends.
func emitSorted(ctx context.Context, infos []ObjectInfo, fn func(ObjectInfo) error) error {
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

func (m *Mem) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mu.objects, key)
	return nil
}
