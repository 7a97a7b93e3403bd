package tiering

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering/objstore"
)

// ErrCorruptObject is returned when an object's footer or a frame fails its
// checks: nothing from it is served.
var ErrCorruptObject = errors.New("tiering: corrupt object")

// Reader serves offset ranges from sealed objects with range GETs of just
// the frames needed. Footers are cached (bounded). It is safe for concurrent
// use.
type Reader struct {
	store      objstore.Store
	maxFooters int
	mu         struct {
		sync.Mutex
		footers map[string]*segment.Footer
		order   []string // insertion order, for eviction
	}
}

// NewReader returns a reader of store caching up to maxFooters footers
// (default 1024).
func NewReader(store objstore.Store, maxFooters int) *Reader {
	if maxFooters <= 0 {
		maxFooters = 1024
	}
	r := &Reader{store: store, maxFooters: maxFooters}
	r.mu.footers = map[string]*segment.Footer{}
	return r
}

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
	if f.BaseOffset != e.BaseOffset || f.LastOffset != e.LastOffset {
		return nil, fmt.Errorf("%w: %s: footer covers [%d, %d], the manifest says [%d, %d]", ErrCorruptObject, e.Key, f.BaseOffset, f.LastOffset, e.BaseOffset, e.LastOffset)
	}
	r.mu.Lock()
	if _, ok := r.mu.footers[e.Key]; !ok {
		r.mu.footers[e.Key] = f
		r.mu.order = append(r.mu.order, e.Key)
		for len(r.mu.order) > r.maxFooters {
			delete(r.mu.footers, r.mu.order[0])
			r.mu.order = r.mu.order[1:]
		}
	}
	r.mu.Unlock()
	return f, nil
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
	// Frames to fetch: from the first, as many as fit maxBytes (raw).
	end := first
	raw := f.Frames[first].RawLen
	for end < last && raw+f.Frames[end+1].RawLen <= int64(maxBytes) {
		end++
		raw += f.Frames[end].RawLen
	}
	start, stop := f.ByteRange(first, end)
	stored, err := r.store.GetRange(ctx, e.Key, start, stop-start)
	if err != nil {
		return nil, from, err
	}
	out := make([]byte, 0, raw)
	for i := first; i <= end; i++ {
		fr := f.Frames[i]
		b := stored[fr.Position-start : fr.Position-start+fr.StoredLen]
		if out, err = segment.AppendFrame(out, f, i, b); err != nil {
			return nil, from, fmt.Errorf("%w: %s frame %d: %v", ErrCorruptObject, e.Key, i, err)
		}
	}
	return out, f.Frames[end].LastOffset + 1, nil
}
