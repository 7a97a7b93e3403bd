package broker

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/segment"
)

var (
	// ErrInvalidConfig marks an unknown topic config key or a bad value.
	ErrInvalidConfig = errors.New("broker: invalid topic config")
	// ErrInvalidPartitions marks a partition count out of range.
	ErrInvalidPartitions = errors.New("broker: invalid partition count")
	// ErrInvalidRequest marks a request that is malformed as a whole.
	ErrInvalidRequest = errors.New("broker: invalid request")
	// ErrInvalidBatch marks records that are not valid RecordBatch v2 bytes.
	ErrInvalidBatch = errors.New("broker: invalid record batch")
	// ErrTopicNotFound is returned for a topic that does not exist.
	ErrTopicNotFound = errors.New("broker: unknown topic")
	// ErrPartitionNotFound is returned for a partition the topic lacks.
	ErrPartitionNotFound = errors.New("broker: unknown partition")
	// ErrTopicExists is returned when creating a topic that exists.
	ErrTopicExists = errors.New("broker: topic already exists")
	// ErrRecordTooLarge is returned for a batch above max.message.bytes.
	ErrRecordTooLarge = errors.New("broker: record batch too large")
	// ErrOffsetOutOfRange is returned for an offset outside the log.
	ErrOffsetOutOfRange = errors.New("broker: offset out of range")
	// ErrNotLeader is returned by a broker that does not lead a partition;
	// see NotLeaderError for the hint.
	ErrNotLeader = errors.New("broker: not the leader")
	// ErrUnavailable is returned while a partition cannot serve: the broker
	// is starting or stopping, or its log failed and awaits recovery.
	ErrUnavailable = errors.New("broker: partition unavailable")
	// ErrDiskFull is returned for produce requests while the broker's
	// local logs exceed its local disk limit.
	ErrDiskFull = errors.New("broker: local disk limit reached")
	// ErrDataLoss is returned when stored data fails its checksum: the
	// broker refuses to serve it.
	ErrDataLoss = errors.New("broker: stored data is corrupt")
	// ErrNotCoordinator is returned by a broker that is not (or no longer)
	// a group's coordinator: the client finds the coordinator again.
	ErrNotCoordinator = errors.New("broker: not the group's coordinator")
	// ErrUnknownMember is returned for a member that is not (or no
	// longer) in its group: it left, its session expired, or it missed its
	// rebalance timeout. Its commits are rejected (fenced).
	ErrUnknownMember = errors.New("broker: unknown group member (fenced)")
	// ErrNotOwner is returned for a commit of a partition the member does
	// not own.
	ErrNotOwner = errors.New("broker: partition not owned by the member")
	// ErrGroupTooLarge is returned for a join that would make the group's
	// state too large to write to etcd.
	ErrGroupTooLarge = errors.New("broker: consumer group too large")
)

// NotLeaderError carries the leader hint of ErrNotLeader.
type NotLeaderError struct {
	Topic         string
	Partition     int32
	LeaderID      int32 // -1 when unknown
	LeaderAddress string
	LeaderEpoch   int64
}

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("broker: not the leader of %s/%d (leader %d at %q, epoch %d)", e.Topic, e.Partition, e.LeaderID, e.LeaderAddress, e.LeaderEpoch)
}

func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// statusTable maps domain errors to gRPC codes, first match wins. It is the
// one place where the broker decides what a client sees.
var statusTable = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalidConfig, codes.InvalidArgument},
	{ErrInvalidPartitions, codes.InvalidArgument},
	{ErrInvalidRequest, codes.InvalidArgument},
	{ErrInvalidBatch, codes.InvalidArgument},
	{metadata.ErrInvalidTopicName, codes.InvalidArgument},
	{metadata.ErrTopicNotFound, codes.NotFound},
	{metadata.ErrPartitionNotFound, codes.NotFound},
	{metadata.ErrTopicExists, codes.AlreadyExists},
	{metadata.ErrFenced, codes.FailedPrecondition},
	{metadata.ErrLeaderExists, codes.Unavailable},
	{metadata.ErrConflict, codes.Aborted},
	{ErrTopicNotFound, codes.NotFound},
	{ErrPartitionNotFound, codes.NotFound},
	{ErrTopicExists, codes.AlreadyExists},
	{ErrRecordTooLarge, codes.ResourceExhausted},
	{ErrOutOfOrderSequence, codes.Aborted},
	{ErrSequenceTooOld, codes.AlreadyExists},
	{ErrUnknownProducer, codes.OutOfRange},
	{ErrDiskFull, codes.Unavailable}, // retriable: uploads and eviction free space
	{ErrOffsetOutOfRange, codes.OutOfRange},
	{segment.ErrOutOfRange, codes.OutOfRange},
	{ErrNotLeader, codes.FailedPrecondition},
	{ErrUnavailable, codes.Unavailable},
	{segment.ErrFailed, codes.Unavailable},
	{segment.ErrClosed, codes.Unavailable},
	{ErrDataLoss, codes.DataLoss},
	{ErrNotCoordinator, codes.Unavailable},
	{ErrUnknownMember, codes.FailedPrecondition},
	{ErrNotOwner, codes.FailedPrecondition},
	{ErrGroupTooLarge, codes.ResourceExhausted},
	{metadata.ErrInvalidGroupName, codes.InvalidArgument},
	{metadata.ErrInvalidOffset, codes.InvalidArgument},
	{metadata.ErrGroupNotFound, codes.NotFound},
	{metadata.ErrGroupNotEmpty, codes.FailedPrecondition},
	{metadata.ErrCoordinatorExists, codes.Unavailable},
	{metadata.ErrCorruptGroupState, codes.DataLoss},
	{segment.ErrCorrupt, codes.DataLoss},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// toStatus converts a domain error into a gRPC status error. Errors that
// are already statuses pass through; anything unknown is Internal.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, row := range statusTable {
		if errors.Is(err, row.err) {
			return status.Error(row.code, err.Error())
		}
	}
	return status.Error(codes.Internal, err.Error())
}
