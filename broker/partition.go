package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/segment"
)

// Acks is how durable a produce must be before it is acknowledged.
type Acks int

const (
	// AcksNone acknowledges once the batch is accepted.
	AcksNone Acks = iota
	// AcksLeader acknowledges once the batch is in the leader's local log
	// and group-fsynced (the log's sync policy).
	AcksLeader
	// AcksAll acknowledges once the batch is durable in the cluster. Until
	// the object-store WAL exists it means: fsynced in the leader's log.
	AcksAll
)

// ParseAcks parses "none", "leader" or "all".
func ParseAcks(s string) (Acks, error) {
	switch s {
	case "none", "0":
		return AcksNone, nil
	case "leader", "1":
		return AcksLeader, nil
	case "all", "-1":
		return AcksAll, nil
	}
	return 0, fmt.Errorf("%w: acks %q (want none, leader or all)", ErrInvalidRequest, s)
}

func (a Acks) String() string { return [...]string{"none", "leader", "all"}[a] }

// partition is a partition this broker leads: its local log and config.
// The log serialises appends itself; readers run concurrently.
type partition struct {
	topic  string
	id     int32
	epoch  int64
	lead   metadata.Leadership
	log    *segment.Log
	config atomic.Pointer[TopicConfig]
	// stateMu serialises the writes of the partition's state key
	// (publishState, handOver, retention) and guards published, the state
	// last written.
	stateMu   sync.Mutex
	published metadata.PartitionState
	topicID   string
	// logStart is the log start offset: retention advances it (committed
	// in etcd first); offsets below it are gone.
	logStart atomic.Int64
	// workMu serialises the partition's background workers (retention,
	// compaction): each works from a snapshot of the manifest.
	workMu sync.Mutex

	// rmu guards remote, the manifest of uploaded segments.
	rmu    sync.RWMutex
	remote remoteState
	// tierMu serialises the partition's uploads and evictions, and guards
	// sealedProducers: the idempotent producers' state as of the end of
	// the uploaded segments (what the next producer snapshot builds on),
	// and pagesDroppedEnd: the local segments below it have been asked to
	// leave the page cache (dropUploadedPages).
	tierMu          sync.Mutex
	sealedProducers map[int64]*producerState
	pagesDroppedEnd int64
	// prodMu guards producers (idempotent producers' sequences) and makes
	// their check and the append one step.
	prodMu    sync.Mutex
	producers map[int64]*producerState
	// remoteTimestamp finds the first uploaded record at or after a
	// timestamp (nil: no tiering).
	remoteTimestamp func(ts int64) (int64, bool, error)
	// remoteRead serves offsets below the local log (nil: no tiering).
	remoteRead func(ctx context.Context, from int64, maxBytes int) ([]byte, int64, error)
	// wal is the partition's WAL progress (nil: no WAL); its committed
	// end is the high watermark readers stop at.
	wal *walState
}

// splitBatches validates records, one or more concatenated RecordBatch v2,
// against the topic's limits, and returns the batches. It checks
// everything before anything is written, so a bad request writes nothing.
func splitBatches(records []byte, maxMessageBytes int32) ([]segment.CheckedBatch, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("%w: no records", ErrInvalidBatch)
	}
	var out []segment.CheckedBatch
	for len(records) > 0 {
		size, err := segment.PeekBatchSize(records)
		if err == nil && size > int(maxMessageBytes) {
			return nil, fmt.Errorf("%w: batch of %d bytes exceeds max.message.bytes %d", ErrRecordTooLarge, size, maxMessageBytes)
		}
		c, err := segment.CheckBatch(records)
		if err != nil {
			return nil, fmt.Errorf("%w: batch %d: %v", ErrInvalidBatch, len(out), err)
		}
		h := c.Header()
		if h.Compression() != 0 {
			return nil, fmt.Errorf("%w: batch %d: compressed batches are not supported yet (codec %d)", ErrInvalidBatch, len(out), h.Compression())
		}
		out = append(out, c)
		records = records[h.Size():]
	}
	return out, nil
}

// appendResult is where a produce landed.
type appendResult struct {
	base, last int64
}

// append writes batches (already validated by splitBatches) to the log and
// returns their offsets, without waiting for durability.
//
// Batches of idempotent producers are checked first, all of them, against
// the sequences already written: a retry of a written batch is answered
// with its offsets and not written again; a sequence gap refuses the
// request (ErrOutOfOrderSequence) with nothing written.
func (p *partition) append(batches []segment.CheckedBatch) (appendResult, error) {
	res := appendResult{base: -1}
	p.prodMu.Lock()
	defer p.prodMu.Unlock()
	dups := make([]*seqRange, len(batches))
	sim := map[int64]*producerState{} // the state as the batches before would leave it
	for i, vb := range batches {
		pid := vb.Header().ProducerID
		if pid < 0 {
			continue
		}
		if _, ok := sim[pid]; !ok {
			sim[pid] = p.producers[pid].clone()
		}
		dup, err := idempotentCheck(sim[pid], vb.Header())
		if err != nil {
			return res, err
		}
		if dups[i] = dup; dup == nil {
			recordBatch(sim, vb.Header(), -1)
		}
	}
	for i, vb := range batches {
		var first, last int64
		if d := dups[i]; d != nil {
			first, last = d.base, d.last
		} else {
			segment.SetPartitionLeaderEpoch(vb.Bytes(), int32(p.epoch))
			var err error
			first, last, err = p.log.AppendChecked(vb)
			if err != nil {
				if errors.Is(err, segment.ErrBatchTooLarge) {
					return res, fmt.Errorf("%w: %v", ErrRecordTooLarge, err)
				}
				return res, err
			}
			p.observe(vb.Header(), first)
		}
		if res.base < 0 {
			res.base = first
		}
		res.last = last
	}
	return res, nil
}

// waitAcks waits until the batches below next are as durable as acks asks.
func (p *partition) waitAcks(ctx context.Context, acks Acks, next int64) error {
	switch acks {
	case AcksNone:
		return nil
	case AcksLeader:
		return p.log.WaitDurable(ctx, next)
	default:
		if p.wal != nil {
			return p.wal.wait(ctx, next-1)
		}
		return p.log.Sync(ctx, next)
	}
}

// resolveOffset turns a start position into an offset of the local log.
func (p *partition) resolveOffset(spec OffsetSpec) (int64, error) {
	start, end := p.offsets()
	switch spec.Kind {
	case OffsetEarliest:
		return start, nil
	case OffsetLatest:
		return end, nil
	case OffsetTimestamp:
		if p.remoteTimestamp != nil {
			// Older records are in the bucket: look there first.
			off, ok, err := p.remoteTimestamp(spec.Value)
			if err != nil {
				return 0, err
			}
			if ok {
				return off, nil
			}
		}
		off, ok, err := p.log.OffsetForTimestamp(spec.Value)
		if err != nil {
			return 0, err
		}
		if !ok || off >= end {
			return end, nil // nothing readable at or after ts yet
		}
		return max(off, start), nil
	default:
		if ls := p.logStart.Load(); spec.Value < ls {
			return 0, fmt.Errorf("%w: offset %d of %s/%d is below the log start %d (deleted by retention); the log has [%d, %d]", ErrOffsetOutOfRange, spec.Value, p.topic, p.id, ls, start, end)
		}
		if spec.Value < start || spec.Value > end {
			return 0, fmt.Errorf("%w: offset %d of %s/%d, log has [%d, %d]", ErrOffsetOutOfRange, spec.Value, p.topic, p.id, start, end)
		}
		return spec.Value, nil
	}
}

// OffsetKind is how a start position is given.
type OffsetKind int

const (
	OffsetExact OffsetKind = iota
	OffsetEarliest
	OffsetLatest
	OffsetTimestamp
)

// OffsetSpec is a start position: an exact offset, earliest, latest, or the
// first record at or after a timestamp (milliseconds).
type OffsetSpec struct {
	Kind  OffsetKind
	Value int64
}

// fetch reads batches from offset into at most maxBytes, waiting until
// deadline (on clock now) for at least minBytes. It returns what it has
// when the wait ends.
func (p *partition) fetch(ctx context.Context, from int64, minBytes, maxBytes int, deadline time.Time, now func() time.Time) (segment.ReadResult, error) {
	var out segment.ReadResult
	out.Next = from
	for range 1000 { // bounded: each turn returns, waits, or moves forward
		if ls := p.logStart.Load(); out.Next < ls {
			// Retention deleted it (perhaps while this stream read).
			if len(out.Batches) > 0 {
				return out, nil
			}
			_, end := p.offsets()
			return out, fmt.Errorf("%w: offset %d of %s/%d is below the log start %d (deleted by retention); the log has [%d, %d]", ErrOffsetOutOfRange, out.Next, p.topic, p.id, ls, ls, end)
		}
		if localStart, _ := p.log.Offsets(); p.fromBucket(out.Next, localStart) {
			if _, ok := p.remoteEntry(out.Next); !ok {
				// A gap: records lost with a broker's disk before they were
				// uploaded (logged at open). Offsets may have gaps, as
				// after compaction: continue at the next stored offset.
				out.Next = p.nextStored(out.Next, localStart)
				continue
			}
			b, next, err := p.remoteRead(ctx, out.Next, maxBytes-len(out.Batches))
			if err != nil {
				if len(out.Batches) > 0 && !errors.Is(err, ErrDataLoss) {
					return out, nil
				}
				return out, err
			}
			if len(out.Batches) > 0 && len(out.Batches)+len(b) > maxBytes {
				return out, nil // only a first read may exceed maxBytes
			}
			out.Batches = append(out.Batches, b...)
			out.Next = next
			_, out.End = p.offsets()
			if len(out.Batches) >= minBytes || len(out.Batches) >= maxBytes {
				return out, nil
			}
			continue
		}
		res, err := p.log.Read(out.Next, maxBytes-len(out.Batches))
		if err == nil && p.wal != nil {
			res = capRead(res, p.wal.committed.Load())
		}
		if err != nil {
			if errors.Is(err, segment.ErrOutOfRange) && p.remoteRead != nil {
				if localStart, _ := p.log.Offsets(); out.Next < localStart {
					continue // evicted meanwhile: read it from the bucket
				}
			}
			if errors.Is(err, segment.ErrOutOfRange) && out.Next < p.logStart.Load() {
				continue // deleted by retention meanwhile: the next turn says so
			}
			if len(out.Batches) > 0 && !errors.Is(err, segment.ErrCorrupt) {
				return out, nil
			}
			if errors.Is(err, segment.ErrCorrupt) {
				return out, fmt.Errorf("%w: %s/%d: %v", ErrDataLoss, p.topic, p.id, err)
			}
			return out, err
		}
		out.End = res.End
		if len(out.Batches) > 0 && len(out.Batches)+len(res.Batches) > maxBytes {
			return out, nil // only a first read may exceed maxBytes
		}
		if len(res.Batches) > 0 {
			out.Batches = append(out.Batches, res.Batches...)
			out.Next = res.Next
		}
		if len(out.Batches) >= minBytes || len(out.Batches) >= maxBytes {
			return out, nil
		}
		if len(res.Batches) > 0 {
			continue // more may be readable in the next segment
		}
		wait := deadline.Sub(now())
		if wait <= 0 {
			return out, nil
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		if p.wal != nil {
			// Readable once committed to the WAL and in the local log
			// (synced, under the always policy).
			err = p.wal.wait(wctx, out.Next)
		}
		if err == nil {
			err = p.log.WaitFor(wctx, out.Next)
		}
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return out, nil
			}
			return out, err
		}
	}
	return out, nil
}

// capRead drops the batches of res at or after the high watermark hw
// (WAL batches end on batch boundaries, so hw is one).
func capRead(res segment.ReadResult, hw int64) segment.ReadResult {
	res.End = min(res.End, hw)
	n := 0
	for h, b := range segment.Batches(res.Batches) {
		if h.BaseOffset >= hw {
			break
		}
		n += len(b)
		res.Next = h.LastOffset() + 1
	}
	res.Batches = res.Batches[:n] // when empty, the caller ignores Next
	return res
}
