package segment

import "errors"

var (
	// ErrCorrupt marks bytes that fail a structural or checksum check: a
	// batch whose CRC does not match, an impossible length, a damaged index
	// or object footer. Corrupt data is never returned to a caller.
	ErrCorrupt = errors.New("segment: corrupt data")

	// ErrShortBatch means the bytes end before the batch does: a torn tail
	// on disk, or a truncated buffer.
	ErrShortBatch = errors.New("segment: short batch")

	// ErrUnsupported marks valid input that this package does not handle,
	// such as the records of a compressed batch.
	ErrUnsupported = errors.New("segment: unsupported")

	// ErrOutOfRange is returned for an offset below the log start or above
	// the log end.
	ErrOutOfRange = errors.New("segment: offset out of range")

	// ErrClosed is returned by operations on a closed log.
	ErrClosed = errors.New("segment: log closed")

	// ErrFailed is returned by every append after a write or sync failed:
	// the state of unsynced data is unknown, so the log refuses further
	// writes until it is closed and reopened, which runs recovery.
	ErrFailed = errors.New("segment: log failed, reopen to recover")

	// ErrBatchTooLarge is returned for a batch larger than the segment
	// limit or MaxBatchSize.
	ErrBatchTooLarge = errors.New("segment: batch too large")
)
