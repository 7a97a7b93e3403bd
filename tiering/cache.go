package tiering

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// FrameCache is a bounded on-disk cache of stored frames (as they are in
// the object: compressed, CRC-checked on every use). Entries are evicted
// least recently used first. It is a cache: it starts empty (its directory
// is wiped), and a file that went missing or is damaged is a miss. Safe for
// concurrent use; no I/O happens under its lock except file removal.
type FrameCache struct {
	dir   string
	limit int64
	mu    struct {
		sync.Mutex
		entries map[string]*list.Element // name → element of lru
		lru     *list.List               // front: most recent; values are *cacheEntry
		size    int64
		hits    int64
		misses  int64
	}
}

type cacheEntry struct {
	name string
	size int64
}

// NewFrameCache returns an empty cache of at most limit bytes in dir.
func NewFrameCache(dir string, limit int64) (*FrameCache, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("tiering: clear cache dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tiering: cache dir: %w", err)
	}
	c := &FrameCache{dir: dir, limit: limit}
	c.mu.entries = map[string]*list.Element{}
	c.mu.lru = list.New()
	return c, nil
}

// frameName is the cache name of frame i of the object at key.
func frameName(key string, i int) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:16]) + "-" + strconv.Itoa(i)
}

func (c *FrameCache) path(name string) string { return filepath.Join(c.dir, name) }

// Get returns a cached frame.
func (c *FrameCache) Get(name string) ([]byte, bool) {
	c.mu.Lock()
	el, ok := c.mu.entries[name]
	if ok {
		c.mu.lru.MoveToFront(el)
		c.mu.hits++
	} else {
		c.mu.misses++
	}
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	b, err := os.ReadFile(c.path(name))
	if err != nil {
		c.Drop(name)
		return nil, false
	}
	return b, true
}

// Put caches a frame, evicting the least recently used ones beyond the
// limit. A frame larger than the whole cache is not cached.
func (c *FrameCache) Put(name string, b []byte) {
	if int64(len(b)) > c.limit {
		return
	}
	tmp := c.path(name + ".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return
	}
	if err := os.Rename(tmp, c.path(name)); err != nil {
		_ = os.Remove(tmp)
		return
	}
	var evict []string
	c.mu.Lock()
	if el, ok := c.mu.entries[name]; ok {
		c.mu.size -= el.Value.(*cacheEntry).size
		c.mu.lru.Remove(el)
	}
	c.mu.entries[name] = c.mu.lru.PushFront(&cacheEntry{name: name, size: int64(len(b))})
	c.mu.size += int64(len(b))
	for c.mu.size > c.limit {
		el := c.mu.lru.Back()
		e := el.Value.(*cacheEntry)
		c.mu.lru.Remove(el)
		delete(c.mu.entries, e.name)
		c.mu.size -= e.size
		evict = append(evict, e.name)
	}
	c.mu.Unlock()
	for _, n := range evict {
		_ = os.Remove(c.path(n))
	}
}

// Drop forgets a frame (a damaged or missing file).
func (c *FrameCache) Drop(name string) {
	c.mu.Lock()
	if el, ok := c.mu.entries[name]; ok {
		c.mu.size -= el.Value.(*cacheEntry).size
		c.mu.lru.Remove(el)
		delete(c.mu.entries, name)
	}
	c.mu.Unlock()
	_ = os.Remove(c.path(name))
}

// Has reports whether a frame is cached, without touching its recency.
func (c *FrameCache) Has(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.mu.entries[name]
	return ok
}

// Stats returns the cached bytes, hits and misses.
func (c *FrameCache) Stats() (size, hits, misses int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.size, c.mu.hits, c.mu.misses
}
