package tiering

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering/objstore"
)

// ErrCorruptObject is returned when an object's footer or a frame fails its
// checks: nothing from it is served.
var ErrCorruptObject = errors.New("tiering: corrupt object")

// ReaderConfig configures a Reader. Zero values take the defaults.
type ReaderConfig struct {
	// Cache keeps fetched frames on local disk; nil disables caching.
	Cache *FrameCache
	// WindowBytes is how much of an object one range GET fetches: the
	// frames a read needs and those after them, up to this many stored
	// bytes (default 8 MiB). Reads of the frames after come from the cache.
	WindowBytes int64
	// ReadAhead starts fetching the next window in the background when a
	// read reaches the second half of a cached window (default on; set
	// NoReadAhead to disable).
	NoReadAhead bool
	// MaxFooters bounds the footer cache (default 1024).
	MaxFooters int
}

// Reader serves offset ranges from sealed objects with range GETs of just
// the frames needed (and a read-ahead window after them). Concurrent reads
// of the same window fetch it once. A cache smaller than the working set
// only makes reads slower: every read uses the bytes it fetched, cached or
// not. It is safe for concurrent use.
type Reader struct {
	store    objstore.Store
	cfg      ReaderConfig
	prefetch chan struct{} // bounds background read-ahead fetches
	ctx      context.Context
	cancel   context.CancelFunc // ends read-ahead (Close)
	mu       struct {
		sync.Mutex
		footers map[string]*segment.Footer
		order   []string // insertion order, for eviction
		flights map[string][]*flight
	}
}

// NewReader returns a reader of store.
func NewReader(store objstore.Store, cfg ReaderConfig) *Reader {
	if cfg.MaxFooters <= 0 {
		cfg.MaxFooters = 1024
	}
	if cfg.WindowBytes <= 0 {
		cfg.WindowBytes = 8 << 20
	}
	r := &Reader{store: store, cfg: cfg, prefetch: make(chan struct{}, 4)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.mu.footers = map[string]*segment.Footer{}
	r.mu.flights = map[string][]*flight{}
	return r
}

// Close stops background read-ahead.
func (r *Reader) Close() { r.cancel() }

// trailerLen is the fixed tail of an object: footer length u32 + magic.
const trailerLen = 12

// Footer returns the footer of the object described by e (cached).
func (r *Reader) Footer(ctx context.Context, e metadata.SegmentEntry) (*segment.Footer, error) {
	r.mu.Lock()
	f, ok := r.mu.footers[e.Key]
	r.mu.Unlock()
	if ok {
		return f, nil
	}
	if e.Size < trailerLen {
		return nil, fmt.Errorf("%w: %s: %d bytes", ErrCorruptObject, e.Key, e.Size)
	}
	tail, err := r.store.GetRange(ctx, e.Key, e.Size-trailerLen, trailerLen)
	if err != nil {
		return nil, err
	}
	n, err := segment.ParseTrailer(tail)
	if err != nil || int64(n) > e.Size-trailerLen {
		return nil, fmt.Errorf("%w: %s: trailer: %v", ErrCorruptObject, e.Key, err)
	}
	fb, err := r.store.GetRange(ctx, e.Key, e.Size-trailerLen-int64(n), int64(n))
	if err != nil {
		return nil, err
	}
	f, err = segment.DecodeFooter(fb)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: footer: %v", ErrCorruptObject, e.Key, err)
	}
	if !FooterMatches(e, f) {
		return nil, fmt.Errorf("%w: %s: footer covers [%d, %d], the manifest says [%d, %d]", ErrCorruptObject, e.Key, f.BaseOffset, f.LastOffset, e.BaseOffset, e.LastOffset)
	}
	r.mu.Lock()
	if _, ok := r.mu.footers[e.Key]; !ok {
		r.mu.footers[e.Key] = f
		r.mu.order = append(r.mu.order, e.Key)
		for len(r.mu.order) > r.cfg.MaxFooters {
			delete(r.mu.footers, r.mu.order[0])
			r.mu.order = r.mu.order[1:]
		}
	}
	r.mu.Unlock()
	return f, nil
}

// FooterMatches reports whether an object whose footer is f can be the
// object of the manifest entry e: it ends where e does, and starts at e's
// base or after it. An entry may start before its object's first batch:
// the offsets compaction emptied at the start of an output stay the
// entry's, so that the manifest keeps no gaps (and the log start does not
// move).
func FooterMatches(e metadata.SegmentEntry, f *segment.Footer) bool {
	return f.BaseOffset >= e.BaseOffset && f.LastOffset == e.LastOffset
}

// window returns the frames [first, last] of the window starting at first:
// as many frames as fit WindowBytes of stored bytes (at least one).
func (r *Reader) window(f *segment.Footer, first int) (int, int) {
	last := first
	size := f.Frames[first].StoredLen
	for last+1 < len(f.Frames) && size+f.Frames[last+1].StoredLen <= r.cfg.WindowBytes {
		last++
		size += f.Frames[last].StoredLen
	}
	return first, last
}

// fetch returns frame i of e, and the other frames fetched with it: from a
// fetch in flight that covers i (however many readers ask, a window is
// fetched once), or by GETting the window starting at i. Fetched frames
// are cached.
func (r *Reader) fetch(ctx context.Context, e metadata.SegmentEntry, f *segment.Footer, i int) (map[int][]byte, error) {
	for {
		r.mu.Lock()
		var wait *flight
		for _, fl := range r.mu.flights[e.Key] {
			if fl.first <= i && i <= fl.last {
				wait = fl
				break
			}
		}
		if wait == nil {
			first, last := r.window(f, i)
			// Stop the window before frames another fetch is bringing.
			for _, fl := range r.mu.flights[e.Key] {
				if fl.first > first && fl.first <= last {
					last = fl.first - 1
				}
			}
			fl := &flight{first: first, last: last, done: make(chan struct{})}
			r.mu.flights[e.Key] = append(r.mu.flights[e.Key], fl)
			r.mu.Unlock()
			fl.frames, fl.err = r.get(ctx, e, f, first, last)
			r.mu.Lock()
			fls := r.mu.flights[e.Key]
			for j, x := range fls {
				if x == fl {
					r.mu.flights[e.Key] = append(fls[:j], fls[j+1:]...)
					break
				}
			}
			if len(r.mu.flights[e.Key]) == 0 {
				delete(r.mu.flights, e.Key)
			}
			r.mu.Unlock()
			close(fl.done)
			return fl.frames, fl.err
		}
		r.mu.Unlock()
		select {
		case <-wait.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if wait.err == nil {
			return wait.frames, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// The other fetch failed (perhaps its context ended): try ourselves.
	}
}

// flight is a window fetch in progress.
type flight struct {
	first, last int
	done        chan struct{}
	frames      map[int][]byte
	err         error
}

// get GETs frames [first, last] of e in one range request and caches them.
func (r *Reader) get(ctx context.Context, e metadata.SegmentEntry, f *segment.Footer, first, last int) (map[int][]byte, error) {
	start, stop := f.ByteRange(first, last)
	stored, err := r.store.GetRange(ctx, e.Key, start, stop-start)
	if err != nil {
		return nil, err
	}
	frames := make(map[int][]byte, last-first+1)
	for i := first; i <= last; i++ {
		fr := f.Frames[i]
		b := stored[fr.Position-start : fr.Position-start+fr.StoredLen]
		frames[i] = b
		if r.cfg.Cache != nil {
			r.cfg.Cache.Put(frameName(e.Key, i), b)
		}
	}
	return frames, nil
}

// maybeReadAhead starts fetching the next window when a sequential reader,
// having read up to frame end, is within half a window of the first frame
// not cached. Only with a cache that holds two windows: a smaller one
// would evict what it prefetched before use.
func (r *Reader) maybeReadAhead(e metadata.SegmentEntry, f *segment.Footer, end int, fetched map[int][]byte) {
	if r.cfg.Cache == nil || r.cfg.NoReadAhead || r.cfg.Cache.limit < 2*r.cfg.WindowBytes || end+1 >= len(f.Frames) {
		return
	}
	_, wl := r.window(f, end+1)
	half := (wl - end + 1) / 2
	for j := end + 1; j <= wl && j-end <= half+1; j++ {
		if fetched[j] == nil && !r.cfg.Cache.Has(frameName(e.Key, j)) {
			r.readAhead(e, f, j)
			return
		}
	}
}

// readAhead fetches the window starting at frame i in the background.
func (r *Reader) readAhead(e metadata.SegmentEntry, f *segment.Footer, i int) {
	select {
	case r.prefetch <- struct{}{}:
	default:
		return // enough fetches in flight
	}
	go func() {
		defer func() { <-r.prefetch }()
		ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
		defer cancel()
		_, _ = r.fetch(ctx, e, f, i)
	}()
}

// Read returns whole batches of the object e starting with the one holding
// offset from, at most maxBytes of them but at least one frame's worth,
// and the offset after the last batch returned. Every frame is checked
// (CRC, length, batch CRCs) before anything is returned; a failure is
// ErrCorruptObject naming the object.
func (r *Reader) Read(ctx context.Context, e metadata.SegmentEntry, from int64, maxBytes int) ([]byte, int64, error) {
	f, err := r.Footer(ctx, e)
	if err != nil {
		return nil, from, err
	}
	first, last, ok := f.FramesFor(from, f.LastOffset)
	if !ok {
		return nil, from, fmt.Errorf("tiering: %s holds no offset %d ([%d, %d])", e.Key, from, f.BaseOffset, f.LastOffset)
	}
	var out []byte
	var fetched map[int][]byte // frames this read fetched, used even if not cached
	end := first
	for i := first; i <= last; i++ {
		if i > first && int64(len(out))+f.Frames[i].RawLen > int64(maxBytes) {
			break
		}
		stored, fromCache := fetched[i], false
		if stored == nil && r.cfg.Cache != nil {
			stored, fromCache = r.cfg.Cache.Get(frameName(e.Key, i))
		}
		if stored == nil {
			if fetched, err = r.fetch(ctx, e, f, i); err != nil {
				return nil, from, err
			}
			stored = fetched[i]
		}
		next, err := segment.AppendFrame(out, f, i, stored)
		if err != nil && fromCache {
			// The cache file is damaged, not necessarily the object: drop
			// it and fetch the frame from the object.
			r.cfg.Cache.Drop(frameName(e.Key, i))
			if fetched, err = r.fetch(ctx, e, f, i); err != nil {
				return nil, from, err
			}
			next, err = segment.AppendFrame(out, f, i, fetched[i])
		}
		if err != nil {
			return nil, from, fmt.Errorf("%w: %s frame %d: %v", ErrCorruptObject, e.Key, i, err)
		}
		out, end = next, i
	}
	r.maybeReadAhead(e, f, end, fetched)
	return trimBefore(out, from), f.Frames[end].LastOffset + 1, nil
}

// trimBefore drops the whole batches of b (checked already) that end
// before offset from: the frame holding from may start well before it.
func trimBefore(b []byte, from int64) []byte {
	n := 0
	for h, raw := range segment.Batches(b) {
		if h.LastOffset() >= from {
			break
		}
		n += len(raw)
	}
	return b[n:]
}
