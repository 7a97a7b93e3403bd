package metadata

import "errors"

var (
	// ErrTopicExists is returned when creating a topic that exists.
	ErrTopicExists = errors.New("metadata: topic already exists")
	// ErrTopicNotFound is returned for a topic that does not exist.
	ErrTopicNotFound = errors.New("metadata: topic not found")
	// ErrPartitionNotFound is returned for a partition the topic lacks.
	ErrPartitionNotFound = errors.New("metadata: partition not found")
	// ErrInvalidTopicName is returned by ValidateTopicName.
	ErrInvalidTopicName = errors.New("metadata: invalid topic name")
	// ErrLeaderExists is returned by AcquireLeadership while another
	// broker's leader key is alive.
	ErrLeaderExists = errors.New("metadata: partition has a live leader")
	// ErrFenced is returned by a leadership-dependent write whose
	// leadership is no longer current: the lease expired or another broker
	// took over. The caller must stop acting as leader.
	ErrFenced = errors.New("metadata: leadership lost (fenced)")
	// ErrConflict is returned when a read-modify-write kept losing races.
	ErrConflict = errors.New("metadata: too many concurrent updates")
	// ErrManifestChanged is returned by ChangeManifest when an entry it
	// was to remove is gone while the leadership still holds: the
	// caller's view of the manifest is stale.
	ErrManifestChanged = errors.New("metadata: manifest changed meanwhile")

	// ErrInvalidGroupName is returned by ValidateGroupName.
	ErrInvalidGroupName = errors.New("metadata: invalid group name")
	// ErrGroupNotFound is returned for a group etcd holds nothing of.
	ErrGroupNotFound = errors.New("metadata: group not found")
	// ErrGroupNotEmpty is returned when resetting the offsets of, or
	// deleting, a group that has members.
	ErrGroupNotEmpty = errors.New("metadata: group has members")
	// ErrCoordinatorExists is returned by AcquireGroupCoordinator while
	// another broker's coordinator key is alive.
	ErrCoordinatorExists = errors.New("metadata: group has a live coordinator")
	// ErrCorruptGroupState is returned for a group state or committed
	// offset that does not decode or breaks its invariants.
	ErrCorruptGroupState = errors.New("metadata: corrupt group state")
	// ErrInvalidOffset is returned for a negative offset to commit.
	ErrInvalidOffset = errors.New("metadata: invalid offset")
)
