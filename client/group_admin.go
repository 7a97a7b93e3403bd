package client

import (
	"context"
	"fmt"
	"hash/fnv"
	"sort"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// groupRetriable reports whether a group call failing with err may
// succeed on another broker: FAILED_PRECONDITION means the request itself
// was refused (a fenced member, a group with members).
func groupRetriable(err error) bool {
	return retriable(err) && status.Code(err) != codes.FailedPrecondition
}

// FindCoordinator returns the id and address of a group's coordinator.
// It asks first the broker the group's name hashes to among the brokers
// this client knows (a broker asked for a group without coordinator
// becomes it, so groups spread over the cluster), then any broker.
func (c *Client) FindCoordinator(ctx context.Context, group string) (int32, string, error) {
	var resp *stratav1.FindCoordinatorResponse
	call := func(cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewGroupServiceClient(cc).FindCoordinator(ctx, &stratav1.FindCoordinatorRequest{Group: group})
		return err
	}
	if addr, ok := c.hashedBroker(group); ok {
		if cc, err := c.conn(addr); err == nil {
			if err := call(cc); err == nil {
				return resp.GetBrokerId(), resp.GetAddress(), nil
			} else if !groupRetriable(err) {
				return -1, "", err
			}
		}
	}
	if err := c.anyBrokerIf(ctx, groupRetriable, call); err != nil {
		return -1, "", err
	}
	return resp.GetBrokerId(), resp.GetAddress(), nil
}

// hashedBroker picks a known broker by the hash of key.
func (c *Client) hashedBroker(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.mu.brokers) == 0 {
		return "", false
	}
	ids := make([]int32, 0, len(c.mu.brokers))
	for id := range c.mu.brokers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return c.mu.brokers[ids[h.Sum32()%uint32(len(ids))]], true
}

// ListGroups lists the consumer groups.
func (c *Client) ListGroups(ctx context.Context) ([]*stratav1.GroupSummary, error) {
	var resp *stratav1.ListGroupsResponse
	err := c.anyBrokerIf(ctx, groupRetriable, func(cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewGroupServiceClient(cc).ListGroups(ctx, &stratav1.ListGroupsRequest{})
		return err
	})
	return resp.GetGroups(), err
}

// DescribeGroup returns a group's members, assignment, committed offsets
// and lag. It asks the group's coordinator when there is one (its view of
// the members is the freshest), any broker otherwise.
func (c *Client) DescribeGroup(ctx context.Context, group string) (*stratav1.DescribeGroupResponse, error) {
	describe := func(cc *grpc.ClientConn) (*stratav1.DescribeGroupResponse, error) {
		return stratav1.NewGroupServiceClient(cc).DescribeGroup(ctx, &stratav1.DescribeGroupRequest{Group: group})
	}
	var resp *stratav1.DescribeGroupResponse
	err := c.anyBrokerIf(ctx, groupRetriable, func(cc *grpc.ClientConn) error {
		var err error
		resp, err = describe(cc)
		return err
	})
	if err != nil {
		return nil, err
	}
	id := resp.GetCoordinatorId()
	if id < 0 {
		return resp, nil
	}
	addr, ok := c.brokerAddr(id)
	if !ok {
		if _, err := c.Metadata(ctx); err == nil {
			addr, ok = c.brokerAddr(id)
		}
	}
	if !ok {
		return resp, nil
	}
	cc, cerr := c.conn(addr)
	if cerr != nil {
		return resp, nil //nolint:nilerr // etcd's view will do
	}
	live, err := describe(cc)
	switch {
	case err == nil:
		return live, nil
	case groupRetriable(err):
		return resp, nil // the coordinator is moving: etcd's view
	}
	return nil, err
}

// brokerAddr returns the address of a broker the client knows.
func (c *Client) brokerAddr(id int32) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	addr, ok := c.mu.brokers[id]
	return addr, ok
}

// GroupOffsets fetches a group's committed offsets (the offset of the
// next record to consume, per partition that has one).
func (c *Client) GroupOffsets(ctx context.Context, group string) (map[TopicPartition]int64, error) {
	d, err := c.DescribeGroup(ctx, group)
	if err != nil {
		return nil, err
	}
	out := map[TopicPartition]int64{}
	for _, p := range d.GetPartitions() {
		if p.GetCommittedOffset() >= 0 {
			out[TopicPartition{Topic: p.GetTopic(), Partition: p.GetPartition()}] = p.GetCommittedOffset()
		}
	}
	return out, nil
}

// ResetGroupOffsets sets the committed offsets of a group that has no
// members (FAILED_PRECONDITION otherwise) and returns the offsets they
// replaced (-1: none was committed).
func (c *Client) ResetGroupOffsets(ctx context.Context, group string, offsets map[TopicPartition]int64) ([]*stratav1.PartitionOffset, error) {
	req := &stratav1.ResetOffsetsRequest{Group: group}
	for tp, o := range offsets {
		req.Offsets = append(req.Offsets, &stratav1.PartitionOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: o})
	}
	var resp *stratav1.ResetOffsetsResponse
	err := c.anyBrokerIf(ctx, groupRetriable, func(cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewGroupServiceClient(cc).ResetOffsets(ctx, req)
		return err
	})
	return resp.GetPrevious(), err
}

// DeleteGroup deletes a group that has no members (FAILED_PRECONDITION
// otherwise) and its committed offsets.
func (c *Client) DeleteGroup(ctx context.Context, group string) error {
	return c.anyBrokerIf(ctx, groupRetriable, func(cc *grpc.ClientConn) error {
		_, err := stratav1.NewGroupServiceClient(cc).DeleteGroup(ctx, &stratav1.DeleteGroupRequest{Group: group})
		return err
	})
}
