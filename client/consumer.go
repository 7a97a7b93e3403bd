package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
)

// Offset is a start position in a partition.
type Offset struct{ spec *stratav1.OffsetSpec }

// AtOffset starts at an exact offset.
func AtOffset(o int64) Offset {
	return Offset{&stratav1.OffsetSpec{Spec: &stratav1.OffsetSpec_Offset{Offset: o}}}
}

// Earliest starts at the first offset still stored.
func Earliest() Offset {
	return Offset{&stratav1.OffsetSpec{Spec: &stratav1.OffsetSpec_Earliest{Earliest: true}}}
}

// Latest starts after the last record: only new records are read.
func Latest() Offset {
	return Offset{&stratav1.OffsetSpec{Spec: &stratav1.OffsetSpec_Latest{Latest: true}}}
}

// AtTime starts at the first record whose timestamp is at or after t.
func AtTime(t time.Time) Offset {
	return Offset{&stratav1.OffsetSpec{Spec: &stratav1.OffsetSpec_TimestampMs{TimestampMs: t.UnixMilli()}}}
}

// Spec is the wire form of the position.
func (o Offset) Spec() *stratav1.OffsetSpec { return o.spec }

// ConsumerConfig configures a PartitionConsumer. Zero values take the
// broker's defaults.
type ConsumerConfig struct {
	// MaxWait is the long-poll wait for MinBytes (broker default 500 ms).
	MaxWait time.Duration
	// MinBytes the broker gathers before answering early (default 1).
	MinBytes int32
	// MaxBytes bounds a response (broker default 1 MiB).
	MaxBytes int32
	// RetryBackoff is the first wait before reconnecting after a retriable
	// error (default 100 ms, doubling to 2 s).
	RetryBackoff time.Duration
	// Reset is what to do when the position is out of range: below the
	// log start (retention deleted it) or past the end.
	Reset OffsetReset
}

// OffsetReset is a consumer's reset policy (Kafka's auto.offset.reset).
type OffsetReset int

const (
	// ResetNone returns the OUT_OF_RANGE error from Poll (the default).
	ResetNone OffsetReset = iota
	// ResetEarliest continues at the log start.
	ResetEarliest
	// ResetLatest continues at the end of the log.
	ResetLatest
)

// ConsumedRecord is a record read from a partition.
type ConsumedRecord struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []segment.RecordHeader
}

// PartitionConsumer reads one partition from a start position with long
// polls, reconnecting (to a new leader if need be) after retriable errors.
// It is not safe for concurrent use.
type PartitionConsumer struct {
	c         *Client
	topic     string
	partition int32
	cfg       ConsumerConfig
	start     Offset
	next      int64 // -1 until the start position is resolved
	hw        int64
	stream    stratav1.ConsumeService_ConsumeClient
	cancel    context.CancelFunc
	failures  int
	resets    int
	closed    bool
}

// ConsumePartition returns a consumer of topic/partition from start.
// Close it when done.
func (c *Client) ConsumePartition(topic string, partition int32, start Offset, cfg ConsumerConfig) *PartitionConsumer {
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 100 * time.Millisecond
	}
	return &PartitionConsumer{c: c, topic: topic, partition: partition, cfg: cfg, start: start, next: -1, hw: -1}
}

// Position is the offset of the next record to be returned (-1 before the
// first poll resolved the start position).
func (pc *PartitionConsumer) Position() int64 { return pc.next }

// Resets counts the times the reset policy moved the position.
func (pc *PartitionConsumer) Resets() int { return pc.resets }

// HighWatermark is the partition's readable end as last reported.
func (pc *PartitionConsumer) HighWatermark() int64 { return pc.hw }

// Poll returns the records of the next response: it waits up to the
// long-poll MaxWait for records and may return none. Retriable errors
// (leader moves, a broker restarting) are retried within ctx; others are
// returned: NotFound for an unknown topic or partition, OutOfRange for a
// start offset outside the log, DataLoss for stored data that fails its
// checksum.
func (pc *PartitionConsumer) Poll(ctx context.Context) ([]ConsumedRecord, error) {
	if pc.closed {
		return nil, ErrClosed
	}
	for {
		if pc.stream == nil {
			if err := pc.connect(ctx); err != nil {
				if pc.reset(err) {
					if err := pc.resetWait(ctx); err != nil {
						return nil, err
					}
					continue
				}
				if err = pc.backoff(ctx, err); err != nil {
					return nil, err
				}
				continue
			}
		}
		// Recv does not watch ctx: ending ctx cancels the stream, which a
		// later Poll reopens at Position.
		stop := context.AfterFunc(ctx, pc.cancel)
		resp, err := pc.stream.Recv()
		stop()
		if err != nil {
			pc.closeStream()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if pc.reset(err) {
				if err := pc.resetWait(ctx); err != nil {
					return nil, err
				}
				continue
			}
			if err = pc.backoff(ctx, err); err != nil {
				return nil, err
			}
			continue
		}
		pc.failures = 0
		pc.hw = resp.GetHighWatermark()
		recs, err := pc.decode(resp.GetRecords())
		if err != nil {
			pc.closeStream()
			return nil, err
		}
		if resp.GetNextOffset() > pc.next {
			pc.next = resp.GetNextOffset()
		}
		return recs, nil
	}
}

// reset applies the reset policy to err: for an out-of-range position
// with a policy, the position is resolved again (earliest or latest) by
// the next connect, and reset reports true.
func (pc *PartitionConsumer) reset(err error) bool {
	if status.Code(err) != codes.OutOfRange || pc.cfg.Reset == ResetNone {
		return false
	}
	pc.start = Earliest()
	if pc.cfg.Reset == ResetLatest {
		pc.start = Latest()
	}
	pc.next = -1
	pc.resets++
	return true
}

// resetWait waits before the second and later resets in a row (a log
// start that keeps moving, or a broker that keeps refusing).
func (pc *PartitionConsumer) resetWait(ctx context.Context) error {
	pc.failures++
	if pc.failures == 1 {
		return nil
	}
	return sleepCtx(ctx, backoff(pc.cfg.RetryBackoff, pc.failures-1))
}

// sleepCtx waits d, or until ctx ends (its error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backoff waits before a retry of a retriable err, or returns err.
func (pc *PartitionConsumer) backoff(ctx context.Context, err error) error {
	if errors.Is(err, ErrNoBroker) {
		err = status.Error(codes.Unavailable, err.Error())
	}
	if !retriable(err) || status.Code(err) == codes.DeadlineExceeded && ctx.Err() != nil {
		return err
	}
	pc.failures++
	if werr := sleepCtx(ctx, backoff(pc.cfg.RetryBackoff, pc.failures)); werr != nil {
		return fmt.Errorf("%w (last error: %v)", werr, err)
	}
	return nil
}

// resolveStart resolves the start position (Position) without fetching,
// retrying retriable errors within ctx.
func (pc *PartitionConsumer) resolveStart(ctx context.Context) error {
	for pc.next < 0 {
		r, err := pc.c.listOffsets(ctx, pc.topic, pc.partition, pc.start.spec, pc.failures > 0)
		if err == nil {
			pc.next, pc.hw = r.GetOffset(), r.GetHighWatermark()
			return nil
		}
		if err := pc.backoff(ctx, err); err != nil {
			return err
		}
	}
	return nil
}

func (pc *PartitionConsumer) connect(ctx context.Context) error {
	if pc.next < 0 {
		// Resolve the start position first, so Position is meaningful and
		// a reconnect resumes exactly where the first stream began.
		r, err := pc.c.listOffsets(ctx, pc.topic, pc.partition, pc.start.spec, pc.failures > 0)
		if err != nil {
			return err
		}
		pc.next, pc.hw = r.GetOffset(), r.GetHighWatermark()
	}
	addr, err := pc.c.leaderAddr(ctx, pc.topic, pc.partition, pc.failures > 0)
	if err != nil {
		return err
	}
	cc, err := pc.c.conn(addr)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	sctx, cancel := context.WithCancel(context.Background())
	stream, err := stratav1.NewConsumeServiceClient(cc).Consume(sctx, &stratav1.ConsumeRequest{
		Topic:     pc.topic,
		Partition: pc.partition,
		Start:     AtOffset(pc.next).spec,
		MaxWaitMs: uint32(pc.cfg.MaxWait / time.Millisecond),
		MinBytes:  pc.cfg.MinBytes,
		MaxBytes:  pc.cfg.MaxBytes,
	})
	if err != nil {
		cancel()
		return err
	}
	pc.stream, pc.cancel = stream, cancel
	return nil
}

func (pc *PartitionConsumer) closeStream() {
	if pc.cancel != nil {
		pc.cancel()
	}
	pc.stream, pc.cancel = nil, nil
}

// decode turns whole batches into records at or after the position.
func (pc *PartitionConsumer) decode(b []byte) ([]ConsumedRecord, error) {
	var out []ConsumedRecord
	err := segment.ForEachBatch(b, func(h segment.BatchHeader, raw []byte) error {
		if h.IsControl() {
			return nil
		}
		return segment.BatchRecords(raw, func(r segment.Record) error {
			if r.Offset < pc.next {
				return nil
			}
			out = append(out, ConsumedRecord{
				Topic: pc.topic, Partition: pc.partition, Offset: r.Offset,
				Timestamp: time.UnixMilli(r.Timestamp), Key: r.Key, Value: r.Value, Headers: r.Headers,
			})
			return nil
		})
	})
	if err != nil {
		return nil, status.Errorf(codes.DataLoss, "client: %s/%d: broker sent a batch that does not decode: %v", pc.topic, pc.partition, err)
	}
	return out, nil
}

// Close stops the consumer; Poll then returns ErrClosed.
func (pc *PartitionConsumer) Close() {
	pc.closed = true
	pc.closeStream()
}
