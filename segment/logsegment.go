package segment

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sync/atomic"
	"time"
)

const (
	logSuffix       = ".log"
	offsetIdxSuffix = ".index"
	timeIdxSuffix   = ".timeindex"
)

// SegmentFileName is the name of the log file of the segment with the given
// base offset: the offset zero-padded to 20 digits, then ".log".
func SegmentFileName(base int64) string { return fmt.Sprintf("%020d%s", base, logSuffix) }

// logSegment is one segment of a Log: its files, and the state readers need.
//
// The fields under "published" change only while Log.mu is held for
// writing, by the appender; readers copy them under Log.mu held for reading.
// Index entries below len(entries) are never modified, so a copied slice
// header stays valid while the appender appends.
type logSegment struct {
	base                  int64
	path                  string // path of the .log file
	log, offIdx, timeIdx  File
	refs                  atomic.Int32 // open readers, plus one for the log itself
	bytesSinceEntry       int          // appender only
	firstAppend           time.Time    // appender only; zero while empty
	persistedIndexEntries int          // appender only: entries already in the index files

	// published
	size    int64 // bytes of whole batches
	next    int64 // offset after the last batch
	maxTS   int64 // largest MaxTimestamp, math.MinInt64 when empty
	entries []indexEntry
}

func segmentPaths(dir string, base int64) (logPath, offPath, timePath string) {
	stem := filepath.Join(dir, fmt.Sprintf("%020d", base))
	return stem + logSuffix, stem + offsetIdxSuffix, stem + timeIdxSuffix
}

// openLogSegment opens (or creates) the three files of a segment. It does
// not read them.
func openLogSegment(fsys FS, dir string, base int64, create bool) (*logSegment, error) {
	lp, op, tp := segmentPaths(dir, base)
	s := &logSegment{base: base, path: lp, next: base, maxTS: math.MinInt64}
	var err error
	if s.log, err = fsys.OpenFile(lp, create); err != nil {
		return nil, err
	}
	if s.offIdx, err = fsys.OpenFile(op, true); err != nil {
		s.log.Close()
		return nil, err
	}
	if s.timeIdx, err = fsys.OpenFile(tp, true); err != nil {
		s.log.Close()
		s.offIdx.Close()
		return nil, err
	}
	s.refs.Store(1)
	return s, nil
}

// acquire takes a reader reference; it fails once the segment is released.
func (s *logSegment) acquire() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference and closes the files with the last one.
func (s *logSegment) release() {
	if s.refs.Add(-1) == 0 {
		s.closeFiles()
	}
}

func (s *logSegment) closeFiles() {
	s.log.Close()
	s.offIdx.Close()
	s.timeIdx.Close()
}

// writeIndexes writes the index entries not yet in the index files. The
// files are hints; they are synced only when sync is true.
func (s *logSegment) writeIndexes(entries []indexEntry, sync bool) error {
	if n := s.persistedIndexEntries; n < len(entries) {
		var ob, tb []byte
		for _, e := range entries[n:] {
			ob = appendOffsetEntry(ob, e)
			tb = appendTimeEntry(tb, e)
		}
		if _, err := s.offIdx.WriteAt(ob, int64(n*offsetEntrySize)); err != nil {
			return err
		}
		if _, err := s.timeIdx.WriteAt(tb, int64(n*timeEntrySize)); err != nil {
			return err
		}
		s.persistedIndexEntries = len(entries)
	}
	if !sync {
		return nil
	}
	if err := s.offIdx.Sync(); err != nil {
		return err
	}
	return s.timeIdx.Sync()
}

// rewriteIndexes replaces both index files with entries.
func (s *logSegment) rewriteIndexes(entries []indexEntry) error {
	if err := s.offIdx.Truncate(0); err != nil {
		return err
	}
	if err := s.timeIdx.Truncate(0); err != nil {
		return err
	}
	s.persistedIndexEntries = 0
	return s.writeIndexes(entries, false)
}

// windowReader reads a file sequentially through a buffer, so scanning many
// small batches costs few system calls.
type windowReader struct {
	f     File
	size  int64
	start int64 // file position of buf[0]
	buf   []byte
}

const scanWindow = 1 << 20

// bytes returns n bytes at pos, or io.ErrUnexpectedEOF when the file ends
// first. The slice is valid until the next call.
func (w *windowReader) bytes(pos int64, n int) ([]byte, error) {
	if pos+int64(n) > w.size {
		return nil, io.ErrUnexpectedEOF
	}
	if pos >= w.start && pos+int64(n) <= w.start+int64(len(w.buf)) {
		return w.buf[pos-w.start : pos-w.start+int64(n)], nil
	}
	want := int64(max(n, scanWindow))
	want = min(want, w.size-pos)
	if int64(cap(w.buf)) < want {
		w.buf = make([]byte, want)
	}
	w.buf = w.buf[:want]
	if _, err := w.f.ReadAt(w.buf, pos); err != nil && (!errors.Is(err, io.EOF) || want != w.size-pos) {
		w.buf = w.buf[:0]
		return nil, err
	}
	w.start = pos
	return w.buf[:n], nil
}

// scanState is where a scan of a segment starts and what it has found.
type scanState struct {
	pos             int64 // position of the next batch
	next            int64 // offset the next batch must start at
	maxTS           int64
	bytesSinceEntry int
	entries         []indexEntry
}

// scan validates the batches of the segment from st.pos to the end of the
// file, extending st (and its index entries, with the same rule as
// appends). It stops at the first batch that is short, fails its CRC, or
// does not follow its predecessor, and returns why (nil at a clean end).
func (s *logSegment) scan(st *scanState, size int64, interval int) error {
	w := &windowReader{f: s.log, size: size}
	for st.pos < size {
		hdr, err := w.bytes(st.pos, 12)
		if err != nil {
			return fmt.Errorf("%w: %d bytes at the end", ErrShortBatch, size-st.pos)
		}
		n, err := PeekBatchSize(hdr)
		if err != nil {
			return err
		}
		b, err := w.bytes(st.pos, n)
		if err != nil {
			return fmt.Errorf("%w: batch of %d bytes at position %d, file ends at %d", ErrShortBatch, n, st.pos, size)
		}
		h, err := ValidateBatch(b)
		if err != nil {
			return err
		}
		if h.BaseOffset != st.next {
			// Offsets are contiguous within a segment; the base offset is
			// outside the CRC, so this is the check that covers it.
			return fmt.Errorf("%w: batch at position %d has base offset %d, want %d", ErrCorrupt, st.pos, h.BaseOffset, st.next)
		}
		rel, ok := relOffset(s.base, h.LastOffset())
		if !ok || st.pos+int64(n) > math.MaxUint32 {
			return fmt.Errorf("%w: batch at position %d does not fit segment %d", ErrCorrupt, st.pos, s.base)
		}
		if st.bytesSinceEntry >= interval {
			st.entries = append(st.entries, indexEntry{rel: rel - uint32(h.LastOffsetDelta), pos: uint32(st.pos), tsBefore: st.maxTS})
			st.bytesSinceEntry = 0
		}
		st.bytesSinceEntry += n
		st.pos += int64(n)
		st.next = h.NextOffset()
		st.maxTS = max(st.maxTS, h.MaxTimestamp)
	}
	return nil
}

// batchAt reads and validates the header of the batch at pos.
func (s *logSegment) headerAt(pos int64) (BatchHeader, error) {
	var hdr [BatchHeaderSize]byte
	if _, err := s.log.ReadAt(hdr[:], pos); err != nil {
		return BatchHeader{}, fmt.Errorf("%w: header at position %d: %v", ErrShortBatch, pos, err)
	}
	return ParseBatchHeader(hdr[:])
}
