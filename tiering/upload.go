package tiering

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering/objstore"
)

// Retry calls fn until it succeeds, fails with an error that is not
// retriable (objstore.IsRetriable), or ctx ends, waiting a jittered
// exponential backoff (base doubling to 30 s) between tries. onRetry, if
// not nil, sees each retriable failure.
func Retry(ctx context.Context, base time.Duration, fn func() error, onRetry func(attempt int, err error)) error {
	return RetryUpTo(ctx, base, 30*time.Second, fn, onRetry)
}

// RetryUpTo is Retry with the backoff capped at maxWait.
func RetryUpTo(ctx context.Context, base, maxWait time.Duration, fn func() error, onRetry func(attempt int, err error)) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !objstore.IsRetriable(err) {
			return err
		}
		if onRetry != nil {
			onRetry(attempt, err)
		}
		d := min(base<<min(attempt-1, 16), maxWait)
		d = d/2 + time.Duration(rand.Int64N(int64(d)+1))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return errors.Join(ctx.Err(), err)
		}
	}
}

// SegmentUpload is one sealed segment to upload.
type SegmentUpload struct {
	Topic     string
	TopicID   string
	Partition int32
	Epoch     int64
	// Batches are the segment's batches (segment.Log.ReadSegment).
	Batches []byte
	// Buf, when set, is storage EncodeSegment may encode the object into
	// (the returned object then aliases it): reused, it spares the
	// runtime 64 MiB of new memory per upload.
	Buf []byte
}

// EncodeSegment turns a sealed segment into its object and manifest entry
// (UploadedMs left zero). The bytes are deterministic, so an upload retried
// after a lost acknowledgement puts the same object again.
func EncodeSegment(u SegmentUpload) ([]byte, metadata.SegmentEntry, error) {
	obj, f, err := segment.EncodeObject(u.Buf[:0], segment.ObjectMeta{Topic: u.Topic, Partition: u.Partition, LeaderEpoch: int32(u.Epoch)}, u.Batches, segment.ObjectOptions{})
	if err != nil {
		return nil, metadata.SegmentEntry{}, fmt.Errorf("tiering: encode %s/%d: %w", u.Topic, u.Partition, err)
	}
	e := metadata.SegmentEntry{
		Key:          ObjectKey(u.Topic, u.TopicID, u.Partition, f.BaseOffset, f.LastOffset, u.Epoch),
		BaseOffset:   f.BaseOffset,
		LastOffset:   f.LastOffset,
		MaxTimestamp: f.MaxTimestamp,
		Records:      f.Records,
		Size:         int64(len(obj)),
		RawSize:      f.RawSize(),
		Epoch:        u.Epoch,
	}
	return obj, e, nil
}
