// Package client is the Go client of Strata: admin calls, a batching
// producer and a partition consumer. It bootstraps from a list of seed
// brokers, routes requests to partition leaders by the cluster's metadata,
// and refreshes that metadata when a broker says it is not the leader.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/internal/rpcbuf"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

var (
	// ErrNoBroker is returned when no seed broker answers.
	ErrNoBroker = errors.New("client: no broker reachable")
	// ErrUnknownTopic is returned for a topic the cluster does not have.
	ErrUnknownTopic = errors.New("client: unknown topic")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("client: closed")
)

// Config configures a Client.
type Config struct {
	// Brokers are seed addresses (host:port); any one reachable is enough.
	Brokers []string
	// DialTimeout bounds each connection attempt (default 5 s).
	DialTimeout time.Duration
	Logger      *slog.Logger
}

// Client is a connection to a Strata cluster. It is safe for concurrent
// use. Close it when done.
type Client struct {
	cfg    Config
	logger *slog.Logger

	// metaGen counts the updates of mu.topics: a producer's cached view of
	// a topic (Producer.hot) holds while it is unchanged.
	metaGen atomic.Uint64

	mu struct {
		sync.Mutex
		conns   map[string]*grpc.ClientConn
		brokers map[int32]string
		topics  map[string]*topicMeta
		closed  bool
	}
}

// topicMeta is a topic's cached partition leaders.
type topicMeta struct {
	leaders []int32 // broker id per partition, -1 when none
	fetched time.Time
}

// New returns a client of the cluster reachable through cfg.Brokers. It
// contacts no broker until the first call.
func New(cfg Config) (*Client, error) {
	if len(cfg.Brokers) == 0 {
		return nil, fmt.Errorf("client: no seed brokers")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Client{cfg: cfg, logger: cfg.Logger}
	c.mu.conns = map[string]*grpc.ClientConn{}
	c.mu.brokers = map[int32]string{}
	c.mu.topics = map[string]*topicMeta{}
	return c, nil
}

// Close closes every connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.closed = true
	for addr, cc := range c.mu.conns {
		cc.Close()
		delete(c.mu.conns, addr)
	}
	return nil
}

// isClosed reports whether Close was called.
func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.closed
}

// conn returns the (lazily created) connection to addr.
func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, ErrClosed
	}
	if cc, ok := c.mu.conns[addr]; ok {
		return cc, nil
	}
	cc, err := Dial(addr)
	if err != nil {
		return nil, err
	}
	c.mu.conns[addr] = cc
	return cc, nil
}

// Dial returns a connection to the broker at addr with the client's
// transport settings (what every Client connection uses).
func Dial(addr string) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient(addr, append(rpcbuf.DialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Pings detect a broker that stopped answering, so pending
		// requests fail (and are retried) instead of waiting forever.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: false}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(80<<20), grpc.MaxCallSendMsgSize(80<<20)),
		grpc.WithInitialWindowSize(4<<20), grpc.WithInitialConnWindowSize(16<<20),
		grpc.WithWriteBufferSize(256<<10), grpc.WithReadBufferSize(256<<10))...)
	if err != nil {
		return nil, fmt.Errorf("client: connect %s: %w", addr, err)
	}
	return cc, nil
}

// anyBroker calls fn with a connection to each known broker in turn (seeds
// first) until one answers without an Unavailable status.
func (c *Client) anyBroker(ctx context.Context, fn func(*grpc.ClientConn) error) error {
	return c.anyBrokerIf(ctx, retriable, fn)
}

// anyBrokerIf is anyBroker, trying the next broker after the errors retry
// accepts.
func (c *Client) anyBrokerIf(ctx context.Context, retry func(error) bool, fn func(*grpc.ClientConn) error) error {
	c.mu.Lock()
	addrs := append([]string(nil), c.cfg.Brokers...)
	for _, a := range c.mu.brokers {
		addrs = append(addrs, a)
	}
	c.mu.Unlock()
	var last error
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			continue
		}
		seen[a] = true
		cc, err := c.conn(a)
		if err != nil {
			last = err
			continue
		}
		err = fn(cc)
		if err == nil || !retry(err) || ctx.Err() != nil {
			return err
		}
		last = err
	}
	return fmt.Errorf("%w (tried %v): %v", ErrNoBroker, addrs, last)
}

// retriable reports whether a call failing with err may succeed elsewhere
// or later.
func retriable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.FailedPrecondition, codes.Aborted, codes.DeadlineExceeded:
		return true
	}
	return false
}

// Metadata fetches the cluster's brokers and the leaders of topics (all
// topics when none is given) and updates the routing cache.
func (c *Client) Metadata(ctx context.Context, topics ...string) (*stratav1.GetMetadataResponse, error) {
	var resp *stratav1.GetMetadataResponse
	err := c.anyBroker(ctx, func(cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewMetadataServiceClient(cc).GetMetadata(ctx, &stratav1.GetMetadataRequest{Topics: topics})
		return err
	})
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, status.Convert(err).Message())
		}
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range resp.GetBrokers() {
		c.mu.brokers[b.GetId()] = b.GetAddress()
	}
	for _, t := range resp.GetTopics() {
		m := &topicMeta{leaders: make([]int32, len(t.GetPartitions())), fetched: time.Now()}
		for _, p := range t.GetPartitions() {
			if int(p.GetPartition()) < len(m.leaders) {
				m.leaders[p.GetPartition()] = p.GetLeaderId()
			}
		}
		c.mu.topics[t.GetName()] = m
	}
	c.metaGen.Add(1)
	return resp, nil
}

// partitions returns the partition count of a topic, fetching metadata when
// the topic is not cached.
func (c *Client) partitions(ctx context.Context, topic string) (int32, error) {
	c.mu.Lock()
	m, ok := c.mu.topics[topic]
	c.mu.Unlock()
	if ok {
		return int32(len(m.leaders)), nil
	}
	if _, err := c.Metadata(ctx, topic); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok = c.mu.topics[topic]
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrUnknownTopic, topic)
	}
	return int32(len(m.leaders)), nil
}

// leaderAddr returns the address of the leader of topic/p from the cache,
// refreshing the metadata when it is unknown or refresh is set.
func (c *Client) leaderAddr(ctx context.Context, topic string, p int32, refresh bool) (string, error) {
	if !refresh {
		if addr, ok := c.cachedLeader(topic, p); ok {
			return addr, nil
		}
	}
	if _, err := c.Metadata(ctx, topic); err != nil {
		return "", err
	}
	if addr, ok := c.cachedLeader(topic, p); ok {
		return addr, nil
	}
	return "", status.Errorf(codes.Unavailable, "client: no leader for %s/%d", topic, p)
}

func (c *Client) cachedLeader(topic string, p int32) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.mu.topics[topic]
	if !ok || p < 0 || int(p) >= len(m.leaders) {
		return "", false
	}
	addr, ok := c.mu.brokers[m.leaders[p]]
	return addr, ok
}

// CreateTopic creates a topic.
func (c *Client) CreateTopic(ctx context.Context, name string, partitions int32, config map[string]string) (*stratav1.TopicDescription, error) {
	var resp *stratav1.CreateTopicResponse
	err := c.anyBroker(ctx, func(cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewAdminServiceClient(cc).CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: name, Partitions: partitions, Config: config})
		return err
	})
	return resp.GetTopic(), err
}

// DeleteTopic deletes a topic and its data.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	return c.anyBroker(ctx, func(cc *grpc.ClientConn) error {
		_, err := stratav1.NewAdminServiceClient(cc).DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: name})
		return err
	})
}

// ListTopics lists the topics.
func (c *Client) ListTopics(ctx context.Context) ([]*stratav1.TopicSummary, error) {
	var resp *stratav1.ListTopicsResponse
	err := c.anyBroker(ctx, func(cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewAdminServiceClient(cc).ListTopics(ctx, &stratav1.ListTopicsRequest{})
		return err
	})
	return resp.GetTopics(), err
}

// DescribeTopic returns a topic's config and partitions.
func (c *Client) DescribeTopic(ctx context.Context, name string) (*stratav1.TopicDescription, error) {
	var resp *stratav1.DescribeTopicResponse
	err := c.anyBroker(ctx, func(cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewAdminServiceClient(cc).DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: name})
		return err
	})
	return resp.GetTopic(), err
}

// AlterTopicConfig sets and resets topic config keys.
func (c *Client) AlterTopicConfig(ctx context.Context, name string, set map[string]string, del []string) (*stratav1.TopicDescription, error) {
	var resp *stratav1.AlterTopicConfigResponse
	err := c.anyBroker(ctx, func(cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewAdminServiceClient(cc).AlterTopicConfig(ctx, &stratav1.AlterTopicConfigRequest{Name: name, Set: set, Delete: del})
		return err
	})
	return resp.GetTopic(), err
}

// ListOffsets resolves a position of one partition on its leader.
func (c *Client) ListOffsets(ctx context.Context, topic string, partition int32, spec *stratav1.OffsetSpec) (*stratav1.ListOffsetsResult, error) {
	return c.listOffsets(ctx, topic, partition, spec, false)
}

// listOffsets is ListOffsets, refreshing the leader first when refresh is
// set (after a failure).
func (c *Client) listOffsets(ctx context.Context, topic string, partition int32, spec *stratav1.OffsetSpec, refresh bool) (*stratav1.ListOffsetsResult, error) {
	addr, err := c.leaderAddr(ctx, topic, partition, refresh)
	if err != nil {
		return nil, err
	}
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	resp, err := stratav1.NewConsumeServiceClient(cc).ListOffsets(ctx, &stratav1.ListOffsetsRequest{
		Partitions: []*stratav1.ListOffsetsPartition{{Topic: topic, Partition: partition, Spec: spec}},
	})
	if err != nil {
		return nil, err
	}
	r := resp.GetPartitions()[0]
	if e := r.GetError(); e != nil {
		return nil, status.Error(codes.Code(e.GetCode()), e.GetMessage())
	}
	return r, nil
}
