package segment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SyncPolicy says when appended batches are fsynced, and so what an
// acknowledgement that waits for WaitDurable survives.
type SyncPolicy int

const (
	// SyncAlways fsyncs every append, and WaitDurable returns once the
	// batch is fsynced. Concurrent appends share one fsync (group commit):
	// the syncer fsyncs everything written while its previous fsync ran.
	// Survives a machine crash. Readers see only synced batches, so a batch
	// a consumer has seen is never lost.
	SyncAlways SyncPolicy = iota
	// SyncInterval fsyncs in the background every Config.SyncInterval and
	// on roll and close; WaitDurable returns at once. A process crash loses
	// nothing (the page cache holds the data); a machine crash loses at most
	// the last interval.
	SyncInterval
	// SyncNever leaves flushing to the operating system, except on roll and
	// close. A process crash loses nothing; a machine crash may lose
	// everything not yet written back by the kernel.
	SyncNever
)

// ParseSyncPolicy parses "always", "interval" or "never".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch s {
	case "always":
		return SyncAlways, nil
	case "interval":
		return SyncInterval, nil
	case "never":
		return SyncNever, nil
	}
	return 0, fmt.Errorf("segment: unknown sync policy %q (want always, interval or never)", s)
}

func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	}
	return "SyncPolicy(" + strconv.Itoa(int(p)) + ")"
}

// Config configures a Log. Zero values take the defaults.
type Config struct {
	Dir string
	// FS is the file system; nil means OSFS.
	FS FS
	// SegmentBytes rolls the active segment before it would exceed this
	// size (default 64 MiB).
	SegmentBytes int64
	// SegmentAge rolls the active segment once its first batch is this old
	// (default 7 days; negative disables).
	SegmentAge time.Duration
	// IndexIntervalBytes is the spacing of index entries (default 4 KiB).
	IndexIntervalBytes int
	// SyncPolicy and SyncInterval (default 100 ms) set durability.
	SyncPolicy   SyncPolicy
	SyncInterval time.Duration
	// SyncOnDemand (with SyncAlways) fsyncs for WaitDurable and Sync
	// callers and every SyncInterval, not for each append, and lets
	// readers see written batches: for a log whose durability comes from
	// elsewhere (the object-store WAL) and whose readers are capped by it,
	// so that appends nobody waits on cost no fsync of their own.
	SyncOnDemand bool
	// OnSync, when set, is told how long each fsync of the active segment
	// by the group-commit syncer took: what a SyncAlways append's
	// WaitDurable waits for (with whatever fsync was already running). It
	// runs on the syncer and must not block.
	OnSync func(time.Duration)
	// StartOffset is the offset of an empty log's first batch (default 0).
	StartOffset int64
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.FS == nil {
		c.FS = OSFS{}
	}
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = 64 << 20
	}
	c.SegmentBytes = min(c.SegmentBytes, math.MaxUint32)
	if c.SegmentAge == 0 {
		c.SegmentAge = 7 * 24 * time.Hour
	}
	if c.IndexIntervalBytes <= 0 {
		c.IndexIntervalBytes = 4096
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = 100 * time.Millisecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Log is a partition's log on local disk: a directory of segments named by
// base offset, each with a sparse offset index and time index.
//
// Append, Roll and Close are serialised by appendMu and may be called from
// any goroutine; reads may run concurrently with them. Lock order:
// appendMu, then sealMu, then mu. No I/O happens under mu.
//
// A roll does no fsync under appendMu: it creates the next segment and
// leaves the rolled one to the syncer, which fsyncs its data and the
// directory (only then does the synced offset pass the rolled segment's
// end), then writes and fsyncs its index files. A crash can therefore tear
// the last two segments, and recovery scans both whole.
type Log struct {
	cfg    Config
	logger *slog.Logger

	// appendMu serialises the writer: it is held across the write system
	// calls of an append or roll, by design, since the active file is the
	// resource being serialised. Readers never take it.
	appendMu sync.Mutex

	// sealMu serialises sealing the rolled segment (seal): the syncer
	// does it, or a roll that finds the previous one still unsealed.
	sealMu sync.Mutex

	mu struct {
		sync.RWMutex
		segments []*logSegment // ascending base offsets; the last is active
		// sealing is the segment rolled last while its seal (fsync of its
		// data, of the directory holding its successor, and of its index
		// files) has not finished: at most one, the one before the active
		// segment. It counts as unsealed (SegmentInfo.Active) until then.
		sealing *logSegment
		written int64 // offset after the last written batch
		synced  int64 // offset below which everything is fsynced
		failed  error // sticky write/sync failure
		closed  bool
		// changed is closed and replaced whenever written, synced, failed or
		// closed changes, waking waiters.
		changed chan struct{}
	}

	syncReq  chan struct{} // capacity 1: "someone waits for a sync"
	stop     chan struct{}
	syncDone chan struct{}
}

// Open opens the log in cfg.Dir, creating it if needed, and recovers it:
// index files are validated and rebuilt when damaged, the batches after the
// last good index entry of each segment are CRC-checked, and a segment is
// cut at its first bad batch (a torn tail). Every batch left is valid.
func Open(cfg Config) (*Log, error) {
	cfg.setDefaults()
	l := &Log{
		cfg:      cfg,
		logger:   cfg.Logger.With("dir", cfg.Dir),
		syncReq:  make(chan struct{}, 1),
		stop:     make(chan struct{}),
		syncDone: make(chan struct{}),
	}
	l.mu.changed = make(chan struct{})
	if err := cfg.FS.MkdirAll(cfg.Dir); err != nil {
		return nil, fmt.Errorf("segment: create log dir: %w", err)
	}
	segs, err := l.recover()
	if err != nil {
		for _, s := range segs {
			s.closeFiles()
		}
		return nil, err
	}
	last := segs[len(segs)-1]
	// What a crashed process left in the page cache counts as synced from
	// here on: make it so for the last two segments (older ones were
	// sealed before the last roll).
	if err := syncTail(cfg.FS, cfg.Dir, segs); err != nil {
		for _, s := range segs {
			s.closeFiles()
		}
		return nil, err
	}
	l.mu.segments = segs
	l.mu.written = last.next
	l.mu.synced = last.next
	go l.syncLoop()
	return l, nil
}

// syncTail fsyncs the last two segments and, when there are two, the
// directory: what a crash may have left unsynced there.
func syncTail(fsys FS, dir string, segs []*logSegment) error {
	for _, s := range segs[max(0, len(segs)-2):] {
		if err := s.log.Sync(); err != nil {
			return fmt.Errorf("segment: sync %s: %w", s.path, err)
		}
	}
	if len(segs) > 1 {
		if err := fsys.SyncDir(dir); err != nil {
			return fmt.Errorf("segment: sync log dir: %w", err)
		}
	}
	return nil
}

// recover opens every segment in the directory, or creates the first one.
func (l *Log) recover() ([]*logSegment, error) {
	names, err := l.cfg.FS.ReadDir(l.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("segment: list log dir: %w", err)
	}
	var bases []int64
	for _, n := range names {
		stem, ok := strings.CutSuffix(n, logSuffix)
		if !ok {
			continue
		}
		base, err := strconv.ParseInt(stem, 10, 64)
		if err != nil || base < 0 || len(stem) != 20 {
			l.logger.Warn("ignoring unexpected file in log dir", "file", n)
			continue
		}
		bases = append(bases, base)
	}
	var segs []*logSegment
	for i, base := range bases {
		s, err := openLogSegment(l.cfg.FS, l.cfg.Dir, base, false)
		if err != nil {
			return segs, fmt.Errorf("segment: open segment %d: %w", base, err)
		}
		segs = append(segs, s)
		if err := l.recoverSegment(s, i >= len(bases)-2); err != nil {
			return segs, err
		}
		if i > 0 && base != segs[i-1].next {
			// A segment starts where its predecessor ends. Overlap is
			// damage; a gap is a crash that cut the predecessor (its seal
			// had not finished) while write-back kept some of this one.
			// Keep the older: what follows the break cannot be in order.
			l.logger.Error("segment does not start where its predecessor ends; dropping it and every later segment",
				"segment", s.path, "previous_next", segs[i-1].next, "segments_dropped", len(bases)-i)
			segs = segs[:i]
			s.closeFiles()
			for _, b := range bases[i:] {
				l.removeFiles(b)
			}
			if err := l.cfg.FS.SyncDir(l.cfg.Dir); err != nil {
				return segs, fmt.Errorf("segment: sync log dir: %w", err)
			}
			break
		}
	}
	// An empty segment other than the last carries nothing: drop it so that
	// base offsets keep increasing with content.
	for i := 0; i < len(segs)-1; {
		if segs[i].size == 0 {
			segs[i].closeFiles()
			l.removeFiles(segs[i].base)
			segs = slices.Delete(segs, i, i+1)
			continue
		}
		i++
	}
	if len(segs) == 0 {
		s, err := l.createSegment(l.cfg.StartOffset)
		if err != nil {
			return nil, err
		}
		segs = append(segs, s)
	}
	return segs, nil
}

// recoverSegment loads a segment's state and cuts it at its first invalid
// batch. The last two segments, the only ones a crash can tear (the active
// one and the one whose seal may not have finished), are scanned whole
// (last); an older one (sealed before the next roll) is checked from its
// last index entry on, trusting the index files only as far as they check
// out, as Kafka trusts segments below its recovery point. Damage inside a
// sealed segment is caught by the CRC check on every read.
func (l *Log) recoverSegment(s *logSegment, last bool) error {
	size, err := s.log.Size()
	if err != nil {
		return fmt.Errorf("segment: size of %s: %w", s.path, err)
	}
	st := scanState{pos: 0, next: s.base, maxTS: math.MinInt64}
	entries, idxErr := l.loadIndexes(s, size)
	if idxErr == nil && len(entries) > 0 && !last {
		// Resume from the last entry, after checking that it names a batch.
		e := entries[len(entries)-1]
		h, err := s.headerAt(int64(e.pos))
		if err == nil && h.BaseOffset == s.base+int64(e.rel) {
			st = scanState{pos: int64(e.pos), next: h.BaseOffset, maxTS: e.tsBefore, entries: entries[:len(entries)-1], bytesSinceEntry: l.cfg.IndexIntervalBytes}
		} else {
			idxErr = fmt.Errorf("%w: last index entry does not name a batch", ErrCorrupt)
		}
	}
	if idxErr != nil {
		l.logger.Warn("rebuilding segment indexes", "segment", s.path, "reason", idxErr)
	}
	scanErr := s.scan(&st, size, l.cfg.IndexIntervalBytes)
	if scanErr != nil {
		l.logger.Error("cutting segment at its first invalid batch",
			"segment", s.path, "position", st.pos, "bytes_cut", size-st.pos, "next_offset", st.next, "reason", scanErr)
		if err := s.log.Truncate(st.pos); err != nil {
			return fmt.Errorf("segment: cut %s: %w", s.path, err)
		}
		if err := s.log.Sync(); err != nil {
			return fmt.Errorf("segment: sync %s: %w", s.path, err)
		}
	}
	if scanErr != nil || idxErr != nil || !slices.Equal(st.entries, entries) {
		if err := s.rewriteIndexes(st.entries); err != nil {
			return fmt.Errorf("segment: rewrite indexes of %s: %w", s.path, err)
		}
	} else {
		s.persistedIndexEntries = len(st.entries)
	}
	s.size, s.next, s.maxTS, s.entries = st.pos, st.next, st.maxTS, st.entries
	s.bytesSinceEntry = st.bytesSinceEntry
	return nil
}

// loadIndexes reads and validates a segment's index files.
func (l *Log) loadIndexes(s *logSegment, logSize int64) ([]indexEntry, error) {
	ob, err := readAll(s.offIdx)
	if err != nil {
		return nil, err
	}
	tb, err := readAll(s.timeIdx)
	if err != nil {
		return nil, err
	}
	return DecodeIndexes(ob, tb, logSize)
}

func readAll(f File) ([]byte, error) {
	n, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && n > 0 {
		return nil, err
	}
	return b, nil
}

// createSegment creates an empty segment and makes its files durable.
func (l *Log) createSegment(base int64) (*logSegment, error) {
	s, err := openLogSegment(l.cfg.FS, l.cfg.Dir, base, true)
	if err != nil {
		return nil, fmt.Errorf("segment: create segment %d: %w", base, err)
	}
	if err := l.cfg.FS.SyncDir(l.cfg.Dir); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("segment: sync log dir: %w", err)
	}
	return s, nil
}

func (l *Log) removeFiles(base int64) {
	lp, op, tp := segmentPaths(l.cfg.Dir, base)
	for _, p := range []string{lp, op, tp} {
		if err := l.cfg.FS.Remove(p); err != nil {
			l.logger.Warn("removing segment file", "file", p, "err", err)
		}
	}
}

// notifyLocked wakes every waiter. l.mu must be held for writing.
func (l *Log) notifyLocked() {
	close(l.mu.changed)
	l.mu.changed = make(chan struct{})
}

// failLocked records a write or sync failure; the log takes no further
// appends. l.mu must be held for writing.
func (l *Log) failLocked(err error) error {
	if l.mu.failed == nil {
		l.mu.failed = fmt.Errorf("%w: %v", ErrFailed, err)
		l.logger.Error("log failed; reopen to recover", "err", err)
		l.notifyLocked()
	}
	return l.mu.failed
}

func (l *Log) fail(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failLocked(err)
}

// Append assigns offsets to one RecordBatch v2 and writes it to the active
// segment, rolling first when the segment is full or old. It rewrites the
// batch's base offset in place (the field is outside the CRC) and returns
// the batch's first and last offsets. The batch is written but not yet
// durable: call WaitDurable before acknowledging it.
//
// A batch that fails validation returns an error wrapping ErrCorrupt or
// ErrShortBatch (or ErrBatchTooLarge) and changes nothing. After a write
// or sync error every append returns ErrFailed.
func (l *Log) Append(batch []byte) (first, last int64, err error) {
	c, err := CheckBatch(batch)
	if err != nil {
		return 0, 0, err
	}
	if len(c.b) != len(batch) {
		return 0, 0, fmt.Errorf("%w: %d bytes after the batch", ErrCorrupt, len(batch)-len(c.b))
	}
	return l.AppendChecked(c)
}

// AppendChecked is Append of a batch CheckBatch has validated already
// (its CRC is not computed again: at 1 KiB records the second pass was
// 6 % of the broker's CPU). Nothing inside the CRC may have changed since.
func (l *Log) AppendChecked(c CheckedBatch) (first, last int64, err error) {
	batch, h := c.b, c.h
	if batch == nil {
		return 0, 0, fmt.Errorf("%w: a CheckedBatch not from CheckBatch", ErrShortBatch)
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	// The roll limits are read under appendMu: SetRollLimits changes them.
	if int64(len(batch)) > l.cfg.SegmentBytes {
		return 0, 0, fmt.Errorf("%w: %d bytes, segment limit %d", ErrBatchTooLarge, len(batch), l.cfg.SegmentBytes)
	}

	l.mu.RLock()
	active, next, failed, closed := l.mu.segments[len(l.mu.segments)-1], l.mu.written, l.mu.failed, l.mu.closed
	l.mu.RUnlock()
	switch {
	case closed:
		return 0, 0, ErrClosed
	case failed != nil:
		return 0, 0, failed
	}
	_, fits := relOffset(active.base, next+int64(h.LastOffsetDelta))
	full := active.size > 0 && (active.size+int64(len(batch)) > l.cfg.SegmentBytes || l.tooOld(active))
	if !fits || full {
		if active, err = l.rollLocked(); err != nil {
			return 0, 0, err
		}
	}

	SetBaseOffset(batch, next)
	pos := active.size
	if _, err := active.log.WriteAt(batch, pos); err != nil {
		return 0, 0, l.fail(fmt.Errorf("append to %s: %w", active.path, err))
	}
	if active.firstAppend.IsZero() {
		active.firstAppend = l.cfg.Now()
	}
	var entry *indexEntry
	if active.bytesSinceEntry >= l.cfg.IndexIntervalBytes {
		entry = &indexEntry{rel: uint32(next - active.base), pos: uint32(pos), tsBefore: active.maxTS}
		active.bytesSinceEntry = 0
	}
	active.bytesSinceEntry += len(batch)

	l.mu.Lock()
	if entry != nil {
		active.entries = append(active.entries, *entry)
	}
	active.size += int64(len(batch))
	active.next = next + int64(h.LastOffsetDelta) + 1
	active.maxTS = max(active.maxTS, h.MaxTimestamp)
	l.mu.written = active.next
	if l.cfg.SyncPolicy != SyncAlways || l.cfg.SyncOnDemand {
		l.notifyLocked()
	}
	l.mu.Unlock()
	if l.cfg.SyncPolicy == SyncAlways && !l.cfg.SyncOnDemand {
		// Readers see synced batches only, so every append asks for a
		// (group) fsync even when nobody waits to acknowledge it.
		select {
		case l.syncReq <- struct{}{}:
		default:
		}
	}
	return next, active.next - 1, nil
}

// SetRollLimits changes SegmentBytes and SegmentAge (zero keeps a value);
// they apply from the next append.
func (l *Log) SetRollLimits(segmentBytes int64, age time.Duration) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if segmentBytes > 0 {
		l.cfg.SegmentBytes = min(segmentBytes, math.MaxUint32)
	}
	if age != 0 {
		l.cfg.SegmentAge = age
	}
}

func (l *Log) tooOld(s *logSegment) bool {
	return olderThan(s, l.cfg.SegmentAge, l.cfg.Now())
}

func olderThan(s *logSegment, age time.Duration, now time.Time) bool {
	return age > 0 && !s.firstAppend.IsZero() && now.Sub(s.firstAppend) >= age
}

// Roll seals the active segment and starts a new one, unless the active
// segment is empty. Sealed segments are what the uploader ships. Unlike
// the roll of a full segment by Append, it returns once the rolled
// segment is sealed (appends go on meanwhile).
func (l *Log) Roll() error {
	_, err := l.rollSealed(func(active *logSegment, failed error, closed bool) (bool, error) {
		switch {
		case closed:
			return false, ErrClosed
		case failed != nil:
			return false, failed
		}
		return active.size > 0, nil
	})
	return err
}

// MaybeRoll rolls the active segment when it is older than SegmentAge, so
// an idle partition's tail is sealed too. It reports whether it rolled.
func (l *Log) MaybeRoll() (bool, error) {
	return l.RollOlderThan(l.cfg.SegmentAge)
}

// RollOlderThan rolls the active segment when its first batch was appended
// at least age ago (0: never). It reports whether it rolled.
// Like Roll, it returns once the rolled segment is sealed.
func (l *Log) RollOlderThan(age time.Duration) (bool, error) {
	return l.rollSealed(func(active *logSegment, failed error, closed bool) (bool, error) {
		// A closed or failed log has nothing to roll; appends report why.
		healthy := !closed && failed == nil
		return healthy && active.size > 0 && olderThan(active, age, l.cfg.Now()), nil
	})
}

// rollSealed rolls the active segment when roll (asked under appendMu)
// says so, and returns once the rolled segment is sealed; appends wait
// only for the roll itself. It reports whether it rolled.
func (l *Log) rollSealed(roll func(active *logSegment, failed error, closed bool) (bool, error)) (bool, error) {
	l.appendMu.Lock()
	l.mu.RLock()
	active, failed, closed := l.mu.segments[len(l.mu.segments)-1], l.mu.failed, l.mu.closed
	l.mu.RUnlock()
	ok, err := roll(active, failed, closed)
	if !ok {
		l.appendMu.Unlock()
		return false, err
	}
	_, err = l.rollLocked()
	l.appendMu.Unlock()
	if err == nil {
		err = l.seal(active)
	}
	return err == nil, err
}

// rollLocked creates the next segment and makes it the active one; the
// syncer seals the rolled one (seal). When the segment rolled before is
// still unsealed - rolls faster than fsyncs - it is sealed here first, so
// at most one segment is ever unsealed besides the active one.
// l.appendMu must be held.
func (l *Log) rollLocked() (*logSegment, error) {
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > 20*time.Millisecond {
			l.cfg.Logger.Warn("slow segment roll: appends waited", "took", d)
		}
	}()
	l.mu.RLock()
	prev := l.mu.sealing
	l.mu.RUnlock()
	if prev != nil {
		if err := l.seal(prev); err != nil {
			return nil, err
		}
	}
	l.mu.RLock()
	next := l.mu.written
	l.mu.RUnlock()
	s, err := openLogSegment(l.cfg.FS, l.cfg.Dir, next, true)
	if err != nil {
		return nil, l.fail(fmt.Errorf("segment: create segment %d: %w", next, err))
	}
	l.mu.Lock()
	l.mu.sealing = l.mu.segments[len(l.mu.segments)-1]
	l.mu.segments = append(l.mu.segments, s)
	l.mu.Unlock()
	select {
	case l.syncReq <- struct{}{}:
	default:
	}
	return s, nil
}

// seal makes the rolled segment s durable: its data, the directory entry
// of its successor (created by the roll), then - once the synced offset
// may pass s - its index files. It is a no-op when s is sealed already.
func (l *Log) seal(s *logSegment) error {
	l.sealMu.Lock()
	defer l.sealMu.Unlock()
	l.mu.RLock()
	pending, entries := l.mu.sealing == s, s.entries
	l.mu.RUnlock()
	if !pending {
		return nil
	}
	if err := s.log.Sync(); err != nil {
		return l.fail(fmt.Errorf("sync %s before roll: %w", s.path, err))
	}
	if err := l.cfg.FS.SyncDir(l.cfg.Dir); err != nil {
		return l.fail(fmt.Errorf("segment: sync log dir: %w", err))
	}
	l.mu.Lock()
	if s.next > l.mu.synced {
		l.mu.synced = s.next
		l.notifyLocked()
	}
	l.mu.Unlock()
	if err := s.writeIndexes(entries, true); err != nil {
		return l.fail(fmt.Errorf("write indexes of %s: %w", s.path, err))
	}
	l.mu.Lock()
	l.mu.sealing = nil
	l.mu.Unlock()
	return nil
}

// syncLoop is the group-commit syncer: whenever someone waits for
// durability (and, with SyncInterval, on every tick) it fsyncs the active
// segment, covering everything written before the fsync started.
func (l *Log) syncLoop() {
	defer close(l.syncDone)
	var tick <-chan time.Time
	// On demand, a background fsync every interval too: it keeps the dirty
	// pages few, so that the fsync of a roll (under the append lock) stays
	// short.
	if l.cfg.SyncPolicy == SyncInterval || l.cfg.SyncPolicy == SyncAlways && l.cfg.SyncOnDemand {
		t := time.NewTicker(l.cfg.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-l.stop:
			return
		case <-l.syncReq:
		case <-tick:
		}
		l.syncOnce()
	}
}

// syncOnce seals the rolled segment if there is one, fsyncs the active
// segment and publishes the synced offset.
func (l *Log) syncOnce() {
	active, target := l.syncTarget()
	if active == nil {
		return
	}
	defer active.release()
	start := l.cfg.Now()
	if err := active.log.Sync(); err != nil {
		_ = l.fail(fmt.Errorf("sync %s: %w", active.path, err))
		return
	}
	if l.cfg.OnSync != nil {
		l.cfg.OnSync(l.cfg.Now().Sub(start))
	}
	l.mu.Lock()
	// A roll may have happened meanwhile: target never exceeds the end of
	// the segment this fsync covered, sealed (data and directory) before.
	if target > l.mu.synced {
		l.mu.synced = target
		l.notifyLocked()
	}
	l.mu.Unlock()
}

// syncTarget seals the rolled segment if there is one and returns the
// active segment (acquired: the caller releases it) and the written end
// an fsync of it makes durable, or nil when the log failed or everything
// written is synced. The written end is read only with no seal pending:
// after a roll it covers the rolled segment's tail, which only its seal
// makes durable (reading it in a section of its own, after a check for a
// seal, let a roll in between have the new segment's fsync call that
// tail synced, and a crash lose acknowledged batches: TestCrashRecovery
// failed 3 times in 150 runs).
func (l *Log) syncTarget() (*logSegment, int64) {
	for {
		l.mu.RLock()
		sealing, failed := l.mu.sealing, l.mu.failed
		if failed == nil && sealing != nil {
			l.mu.RUnlock()
			if l.seal(sealing) != nil {
				return nil, 0
			}
			continue
		}
		active, target := l.mu.segments[len(l.mu.segments)-1], l.mu.written
		ok := failed == nil && target > l.mu.synced && active.acquire()
		l.mu.RUnlock()
		if !ok {
			return nil, 0
		}
		return active, target
	}
}

// WaitDurable waits until the batches below next are as durable as the sync
// policy promises: fsynced for SyncAlways (one fsync shared by every
// concurrent waiter), at once for the other policies. It returns ErrFailed
// if a write or sync failed, in which case nothing unsynced may be
// acknowledged.
func (l *Log) WaitDurable(ctx context.Context, next int64) error {
	if l.cfg.SyncPolicy != SyncAlways {
		l.mu.RLock()
		defer l.mu.RUnlock()
		return l.mu.failed
	}
	return l.Sync(ctx, next)
}

// Sync waits until every batch below next is fsynced, whatever the policy.
func (l *Log) Sync(ctx context.Context, next int64) error {
	for {
		l.mu.RLock()
		synced, failed, closed, ch := l.mu.synced, l.mu.failed, l.mu.closed, l.mu.changed
		l.mu.RUnlock()
		switch {
		case synced >= next:
			return nil
		case failed != nil:
			return failed
		case closed:
			return ErrClosed
		}
		select {
		case l.syncReq <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stableEndLocked is the offset below which readers may read: the synced
// end under SyncAlways (so no reader sees a batch a crash could take back),
// the written end otherwise.
func (l *Log) stableEndLocked() int64 {
	if l.cfg.SyncPolicy == SyncAlways && !l.cfg.SyncOnDemand {
		return l.mu.synced
	}
	return l.mu.written
}

// Offsets returns the first offset of the local log and the offset after its
// last readable batch.
func (l *Log) Offsets() (start, end int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.segments[0].base, l.stableEndLocked()
}

// WrittenOffset is the offset after the last written batch, durable or not.
func (l *Log) WrittenOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.written
}

// WaitFor blocks until a batch at or after offset is readable, ctx ends, or
// the log closes or fails. It is the building block of long polls.
func (l *Log) WaitFor(ctx context.Context, offset int64) error {
	for {
		l.mu.RLock()
		end, failed, closed, ch := l.stableEndLocked(), l.mu.failed, l.mu.closed, l.mu.changed
		l.mu.RUnlock()
		switch {
		case end > offset:
			return nil
		case closed:
			return ErrClosed
		case failed != nil:
			return failed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ReadResult is what Read returns.
type ReadResult struct {
	// Batches are whole, CRC-checked batches. The first may start before
	// the requested offset; the caller skips records below it.
	Batches []byte
	// Next is the offset after the last returned batch (the requested
	// offset when nothing was returned).
	Next int64
	// End is the log's readable end at the time of the read.
	End int64
}

// Read returns whole batches starting with the one that holds offset from,
// at most maxBytes of them but always at least one when any is readable.
// It returns nothing when from is the readable end, ErrOutOfRange below the
// local start or beyond the end, and an error wrapping ErrCorrupt (naming
// the file and position) instead of any batch that fails its CRC. Batches
// come from one segment per call.
func (l *Log) Read(from int64, maxBytes int) (ReadResult, error) {
	return l.read(from, maxBytes, false)
}

// ReadWritten is Read up to the written end, synced or not: for copying
// the log to storage that is durable itself (the object-store WAL), which
// need not wait for the local fsync.
func (l *Log) ReadWritten(from int64, maxBytes int) (ReadResult, error) {
	return l.read(from, maxBytes, true)
}

func (l *Log) read(from int64, maxBytes int, written bool) (ReadResult, error) {
	l.mu.RLock()
	if l.mu.closed {
		l.mu.RUnlock()
		return ReadResult{}, ErrClosed
	}
	segs, end := l.mu.segments, l.stableEndLocked()
	if written {
		end = l.mu.written
	}
	start := segs[0].base
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > from }) - 1
	// Step over segments that end at or before from (an offset gap).
	for i >= 0 && i < len(segs)-1 && segs[i].next <= from {
		i++
	}
	var s *logSegment
	var size, segNext int64
	var entries []indexEntry
	if i >= 0 && segs[i].acquire() {
		s, size, segNext, entries = segs[i], segs[i].size, segs[i].next, segs[i].entries
	}
	l.mu.RUnlock()
	res := ReadResult{Next: from, End: end}
	switch {
	case from < start || from > end:
		if s != nil {
			s.release()
		}
		return res, fmt.Errorf("%w: offset %d, log has [%d, %d)", ErrOutOfRange, from, start, end)
	case from == end:
		if s != nil {
			s.release()
		}
		return res, nil
	case s == nil:
		return res, fmt.Errorf("%w: offset %d: segment was removed", ErrOutOfRange, from)
	}
	defer s.release()
	return s.read(from, maxBytes, size, min(end, segNext), entries, res)
}

// read finds the batch holding from and returns it and the batches after it
// that fit in maxBytes, without passing position limit or offset end.
// Every batch must start where its predecessor ended: base offsets are
// outside the CRC, so contiguity is what vouches for them.
func (s *logSegment) read(from int64, maxBytes int, limit, end int64, entries []indexEntry, res ReadResult) (ReadResult, error) {
	pos, expect := int64(0), s.base
	if rel, ok := relOffset(s.base, from); ok {
		if k := floorByOffset(entries, rel); k >= 0 {
			pos, expect = int64(entries[k].pos), s.base+int64(entries[k].rel)
		}
	}
	for pos < limit {
		h, err := s.headerAt(pos)
		if err == nil && (h.BaseOffset != expect || h.LastOffset() >= end) {
			err = fmt.Errorf("batch [%d, %d], want base %d below %d", h.BaseOffset, h.LastOffset(), expect, end)
		}
		if err != nil {
			return res, fmt.Errorf("%w: %s at position %d: %v", ErrCorrupt, s.path, pos, err)
		}
		if h.LastOffset() >= from {
			break
		}
		pos += int64(h.Size())
		expect = h.NextOffset()
	}
	if pos >= limit {
		return res, nil
	}
	want := min(int64(max(maxBytes, BatchHeaderSize)), limit-pos)
	buf := make([]byte, want)
	if _, err := s.log.ReadAt(buf, pos); err != nil {
		return res, fmt.Errorf("segment: read %s at %d: %w", s.path, pos, err)
	}
	// The first batch is returned whole even when it exceeds maxBytes.
	sz, err := PeekBatchSize(buf)
	if err != nil || pos+int64(sz) > limit {
		return res, fmt.Errorf("%w: %s at position %d: bad batch length", ErrCorrupt, s.path, pos)
	}
	if sz > len(buf) {
		buf = make([]byte, sz)
		if _, err := s.log.ReadAt(buf, pos); err != nil {
			return res, fmt.Errorf("segment: read %s at %d: %w", s.path, pos, err)
		}
	}
	n := 0
	for n < len(buf) {
		h, err := ValidateBatch(buf[n:])
		if err != nil {
			if n > 0 {
				break // a batch cut by maxBytes, or a bad one the next read reports
			}
			return res, fmt.Errorf("%s at position %d: %w", s.path, pos, asCorrupt(err))
		}
		if h.BaseOffset != expect || h.LastOffset() >= end {
			if n > 0 {
				break
			}
			return res, fmt.Errorf("%w: %s at position %d: batch [%d, %d], want base %d below %d", ErrCorrupt, s.path, pos, h.BaseOffset, h.LastOffset(), expect, end)
		}
		n += h.Size()
		expect = h.NextOffset()
		res.Next = expect
	}
	res.Batches = buf[:n]
	return res, nil
}

// OffsetForTimestamp returns the offset of the first batch of the local log
// whose max timestamp is at or after ts, and false when there is none.
func (l *Log) OffsetForTimestamp(ts int64) (int64, bool, error) {
	l.mu.RLock()
	segs, end := l.mu.segments, l.stableEndLocked()
	type snap struct {
		s       *logSegment
		size    int64
		entries []indexEntry
		maxTS   int64
	}
	var cands []snap
	for _, s := range segs {
		if s.maxTS >= ts && s.acquire() {
			cands = append(cands, snap{s, s.size, s.entries, s.maxTS})
		}
	}
	l.mu.RUnlock()
	defer func() {
		for _, c := range cands {
			c.s.release()
		}
	}()
	for _, c := range cands {
		pos := int64(0)
		if k := floorByTime(c.entries, ts); k >= 0 {
			pos = int64(c.entries[k].pos)
		}
		for pos < c.size {
			h, err := c.s.headerAt(pos)
			if err != nil {
				return 0, false, fmt.Errorf("%w: %s at position %d: %v", ErrCorrupt, c.s.path, pos, err)
			}
			if h.BaseOffset >= end {
				return 0, false, nil
			}
			if h.MaxTimestamp >= ts {
				return h.BaseOffset, true, nil
			}
			pos += int64(h.Size())
		}
	}
	return 0, false, nil
}

// SegmentInfo describes one segment.
type SegmentInfo struct {
	BaseOffset   int64
	NextOffset   int64 // offset after the last batch
	Size         int64
	MaxTimestamp int64 // math.MinInt64 when empty
	Path         string
	// Active marks a segment that is not sealed: the one being appended
	// to, or the one rolled last while the syncer seals it.
	Active bool
}

// Segments lists the segments, oldest first. All but the Active ones are
// sealed: fsynced and never written again.
func (l *Log) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]SegmentInfo, len(l.mu.segments))
	for i, s := range l.mu.segments {
		out[i] = SegmentInfo{BaseOffset: s.base, NextOffset: s.next, Size: s.size, MaxTimestamp: s.maxTS, Path: s.path,
			Active: i == len(l.mu.segments)-1 || s == l.mu.sealing}
	}
	return out
}

// ReadSegment returns the bytes of the sealed segment with the given base
// offset (every batch CRC-checked), for sealing into an object.
func (l *Log) ReadSegment(base int64) ([]byte, error) {
	return l.ReadSegmentInto(nil, base)
}

// ReadSegmentInto is ReadSegment reading into dst's storage when it is
// large enough (a fresh slice otherwise): a caller that seals segment
// after segment reuses one buffer instead of asking the runtime for 64
// MiB of new memory each time.
func (l *Log) ReadSegmentInto(dst []byte, base int64) ([]byte, error) {
	s, size, err := l.acquireSealed(base)
	if err != nil {
		return nil, err
	}
	defer s.release()
	b := dst[:0]
	if int64(cap(b)) < size {
		b = make([]byte, size)
	}
	b = b[:size]
	if _, err := s.log.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("segment: read %s: %w", s.path, err)
	}
	if err := ForEachBatch(b, func(BatchHeader, []byte) error { return nil }); err != nil {
		return nil, fmt.Errorf("segment: %s: %w", s.path, err)
	}
	return b, nil
}

// acquireSealed returns the sealed segment with the given base offset and
// its size, acquired: the caller releases it.
func (l *Log) acquireSealed(base int64) (*logSegment, int64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for i, c := range l.mu.segments {
		if c.base == base && i < len(l.mu.segments)-1 && c != l.mu.sealing && c.acquire() {
			return c, c.size, nil
		}
	}
	return nil, 0, fmt.Errorf("%w: no sealed segment at %d", ErrOutOfRange, base)
}

// DropCache asks the operating system to drop the sealed segment at base
// from its page cache (its data is unaffected: later reads of it go to the
// disk). The broker calls it for uploaded segments older than its page
// cache window: a log that only grows would otherwise fill the page cache
// with batches few read again, and on a VM whose free memory goes back to
// the host that costs every write a fresh page from the host
// (docs/operations.md, "Page cache of uploaded segments"). It does
// nothing where the file system cannot drop pages (MemFS, not Linux).
func (l *Log) DropCache(base int64) error {
	s, _, err := l.acquireSealed(base)
	if err != nil {
		return err
	}
	defer s.release()
	d, ok := s.log.(cacheDropper)
	if !ok {
		return nil
	}
	if err := d.DropCache(); err != nil {
		return fmt.Errorf("segment: drop %s from the page cache: %w", s.path, err)
	}
	return nil
}

// RemoveSegmentsBefore deletes the sealed segments whose batches all lie
// below offset (never an Active one) and returns how many it removed.
// Readers already reading a removed segment finish their read.
func (l *Log) RemoveSegmentsBefore(offset int64) (int, error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	var gone []*logSegment
	for len(l.mu.segments) > 1 && l.mu.segments[0].next <= offset && l.mu.segments[0] != l.mu.sealing {
		gone = append(gone, l.mu.segments[0])
		l.mu.segments = l.mu.segments[1:]
	}
	l.mu.Unlock()
	for _, s := range gone {
		l.removeFiles(s.base)
		s.release()
	}
	if len(gone) > 0 {
		if err := l.cfg.FS.SyncDir(l.cfg.Dir); err != nil {
			return len(gone), fmt.Errorf("segment: sync log dir: %w", err)
		}
	}
	return len(gone), nil
}

// Close syncs the log, writes the index files and closes everything. Reads
// and appends after Close return ErrClosed.
func (l *Log) Close() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return nil
	}
	l.mu.closed = true
	l.notifyLocked()
	segs, failed := l.mu.segments, l.mu.failed
	l.mu.Unlock()
	close(l.stop)
	<-l.syncDone
	var err error
	l.mu.RLock()
	sealing := l.mu.sealing
	l.mu.RUnlock()
	if sealing != nil && failed == nil {
		err = l.seal(sealing)
		failed = err
	}
	active := segs[len(segs)-1]
	if failed == nil {
		if e := active.log.Sync(); e != nil {
			err = fmt.Errorf("segment: sync %s: %w", active.path, e)
		} else if e := active.writeIndexes(active.entries, true); e != nil {
			err = fmt.Errorf("segment: write indexes of %s: %w", active.path, e)
		}
	}
	for _, s := range segs {
		s.release()
	}
	return err
}

// asCorrupt makes a short-batch error found inside the readable part of a
// file a corruption error: whole batches were written there.
func asCorrupt(err error) error {
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}
