package metadata

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Store reads and writes the cluster's metadata in etcd. It is safe for
// concurrent use; every method is one or a few etcd requests, with no
// caching.
type Store struct {
	cli    *clientv3.Client
	prefix string
	now    func() time.Time
}

// New returns a Store for cluster on cli.
func New(cli *clientv3.Client, cluster string) *Store {
	return &Store{cli: cli, prefix: "/strata/" + cluster + "/", now: time.Now}
}

// Client is the etcd client.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Prefix is the cluster prefix, ending in "/".
func (s *Store) Prefix() string { return s.prefix }

func (s *Store) topicKey(name string) string { return s.prefix + "topics/" + name }
func (s *Store) partitionPrefix(topic string) string {
	return s.prefix + "partitions/" + topic + "/"
}
func (s *Store) partitionKey(topic string, p int32, leaf string) string {
	return s.partitionPrefix(topic) + strconv.Itoa(int(p)) + "/" + leaf
}

// Topic is a topic's definition.
type Topic struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"` // random, per incarnation
	Partitions int32             `json:"partitions"`
	Config     map[string]string `json:"config,omitempty"` // overrides only
	CreatedMs  int64             `json:"created_ms"`
}

// PartitionState is a partition's offsets.
type PartitionState struct {
	LogStartOffset int64 `json:"log_start_offset"`
	HighWatermark  int64 `json:"high_watermark"`
}

// CreateTopic creates t in one transaction with the initial state of every
// partition. It fills t.ID and t.CreatedMs and returns the stored topic, or
// ErrTopicExists.
func (s *Store) CreateTopic(ctx context.Context, t Topic) (Topic, error) {
	if err := ValidateTopicName(t.Name); err != nil {
		return t, err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	t.ID = hex.EncodeToString(id[:])
	t.CreatedMs = s.now().UnixMilli()
	tv, err := json.Marshal(t)
	if err != nil {
		return t, err
	}
	sv, _ := json.Marshal(PartitionState{})
	key := s.topicKey(t.Name)
	ops := []clientv3.Op{clientv3.OpPut(key, string(tv))}
	for p := range t.Partitions {
		ops = append(ops,
			clientv3.OpPut(s.partitionKey(t.Name, p, "state"), string(sv)),
			clientv3.OpPut(s.partitionKey(t.Name, p, "epoch"), "0"))
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(ops...).
		Commit()
	if err != nil {
		return t, fmt.Errorf("metadata: create topic %s: %w", t.Name, err)
	}
	if !resp.Succeeded {
		return t, fmt.Errorf("%w: %s", ErrTopicExists, t.Name)
	}
	return t, nil
}

// GetTopic returns a topic or ErrTopicNotFound.
func (s *Store) GetTopic(ctx context.Context, name string) (Topic, error) {
	t, _, err := s.getTopic(ctx, name)
	return t, err
}

func (s *Store) getTopic(ctx context.Context, name string) (Topic, int64, error) {
	resp, err := s.cli.Get(ctx, s.topicKey(name))
	if err != nil {
		return Topic{}, 0, fmt.Errorf("metadata: get topic %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return Topic{}, 0, fmt.Errorf("%w: %s", ErrTopicNotFound, name)
	}
	var t Topic
	if err := json.Unmarshal(resp.Kvs[0].Value, &t); err != nil {
		return Topic{}, 0, fmt.Errorf("metadata: decode topic %s: %w", name, err)
	}
	return t, resp.Kvs[0].ModRevision, nil
}

// ListTopics returns every topic, sorted by name.
func (s *Store) ListTopics(ctx context.Context) ([]Topic, error) {
	resp, err := s.cli.Get(ctx, s.prefix+"topics/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metadata: list topics: %w", err)
	}
	out := make([]Topic, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var t Topic
		if err := json.Unmarshal(kv.Value, &t); err != nil {
			return nil, fmt.Errorf("metadata: decode %s: %w", kv.Key, err)
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteTopic deletes a topic and every key of its partitions in one
// transaction, or returns ErrTopicNotFound.
func (s *Store) DeleteTopic(ctx context.Context, name string) error {
	key := s.topicKey(name)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
		Then(clientv3.OpDelete(key), clientv3.OpDelete(s.partitionPrefix(name), clientv3.WithPrefix())).
		Commit()
	if err != nil {
		return fmt.Errorf("metadata: delete topic %s: %w", name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: %s", ErrTopicNotFound, name)
	}
	return nil
}

// AlterTopicConfig applies update to a copy of the topic's config overrides
// and stores the result if the topic did not change meanwhile, retrying a
// few times. update may reject the change with an error, returned as is.
func (s *Store) AlterTopicConfig(ctx context.Context, name string, update func(map[string]string) (map[string]string, error)) (Topic, error) {
	for range 10 {
		t, rev, err := s.getTopic(ctx, name)
		if err != nil {
			return t, err
		}
		cfg, err := update(maps.Clone(t.Config))
		if err != nil {
			return t, err
		}
		t.Config = cfg
		tv, _ := json.Marshal(t)
		key := s.topicKey(name)
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, string(tv))).
			Commit()
		if err != nil {
			return t, fmt.Errorf("metadata: alter topic %s: %w", name, err)
		}
		if resp.Succeeded {
			return t, nil
		}
	}
	return Topic{}, fmt.Errorf("%w: altering topic %s", ErrConflict, name)
}

// GetPartitionState returns a partition's offsets, or ErrPartitionNotFound.
func (s *Store) GetPartitionState(ctx context.Context, topic string, p int32) (PartitionState, error) {
	resp, err := s.cli.Get(ctx, s.partitionKey(topic, p, "state"))
	if err != nil {
		return PartitionState{}, fmt.Errorf("metadata: get state of %s/%d: %w", topic, p, err)
	}
	if len(resp.Kvs) == 0 {
		return PartitionState{}, fmt.Errorf("%w: %s/%d", ErrPartitionNotFound, topic, p)
	}
	var st PartitionState
	if err := json.Unmarshal(resp.Kvs[0].Value, &st); err != nil {
		return st, fmt.Errorf("metadata: decode state of %s/%d: %w", topic, p, err)
	}
	return st, nil
}

// Leader is who leads a partition.
type Leader struct {
	BrokerID int32 `json:"broker_id"`
	Epoch    int64 `json:"epoch"`
}

// Leadership is a broker's proof of leading a partition, used to fence
// writes. It is valid while the leader key is unchanged.
type Leadership struct {
	Topic     string
	Partition int32
	Leader
	// ModRevision is the leader key's mod revision when it was taken.
	ModRevision int64
}

// AcquireLeadership makes brokerID the leader of topic/p with a new epoch,
// bound to lease. It fails with ErrLeaderExists while another leader key
// is alive, and ErrPartitionNotFound when the partition does not exist.
func (s *Store) AcquireLeadership(ctx context.Context, topic string, p int32, brokerID int32, lease clientv3.LeaseID) (Leadership, error) {
	leaderKey, epochKey := s.partitionKey(topic, p, "leader"), s.partitionKey(topic, p, "epoch")
	for range 10 {
		resp, err := s.cli.Get(ctx, epochKey)
		if err != nil {
			return Leadership{}, fmt.Errorf("metadata: read epoch of %s/%d: %w", topic, p, err)
		}
		if len(resp.Kvs) == 0 {
			return Leadership{}, fmt.Errorf("%w: %s/%d", ErrPartitionNotFound, topic, p)
		}
		epoch, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
		if err != nil {
			return Leadership{}, fmt.Errorf("metadata: epoch of %s/%d: %w", topic, p, err)
		}
		l := Leader{BrokerID: brokerID, Epoch: epoch + 1}
		lv, _ := json.Marshal(l)
		txn, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(leaderKey), "=", 0),
				clientv3.Compare(clientv3.ModRevision(epochKey), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(epochKey, strconv.FormatInt(l.Epoch, 10)),
				clientv3.OpPut(leaderKey, string(lv), clientv3.WithLease(lease))).
			Else(clientv3.OpGet(leaderKey)).
			Commit()
		if err != nil {
			return Leadership{}, fmt.Errorf("metadata: take leadership of %s/%d: %w", topic, p, err)
		}
		if txn.Succeeded {
			return Leadership{Topic: topic, Partition: p, Leader: l, ModRevision: txn.Header.Revision}, nil
		}
		if kvs := txn.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			var cur Leader
			_ = json.Unmarshal(kvs[0].Value, &cur)
			return Leadership{}, fmt.Errorf("%w: %s/%d is led by broker %d (epoch %d)", ErrLeaderExists, topic, p, cur.BrokerID, cur.Epoch)
		}
	}
	return Leadership{}, fmt.Errorf("%w: taking leadership of %s/%d", ErrConflict, topic, p)
}

// GetLeader returns the live leader of topic/p; ok is false when none.
func (s *Store) GetLeader(ctx context.Context, topic string, p int32) (Leader, bool, error) {
	resp, err := s.cli.Get(ctx, s.partitionKey(topic, p, "leader"))
	if err != nil {
		return Leader{}, false, fmt.Errorf("metadata: get leader of %s/%d: %w", topic, p, err)
	}
	if len(resp.Kvs) == 0 {
		return Leader{}, false, nil
	}
	var l Leader
	if err := json.Unmarshal(resp.Kvs[0].Value, &l); err != nil {
		return l, false, fmt.Errorf("metadata: decode leader of %s/%d: %w", topic, p, err)
	}
	return l, true, nil
}

// fencedPut writes key=value only while lead is current.
func (s *Store) fencedPut(ctx context.Context, lead Leadership, key, value string) error {
	leaderKey := s.partitionKey(lead.Topic, lead.Partition, "leader")
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(leaderKey), "=", lead.ModRevision)).
		Then(clientv3.OpPut(key, value)).
		Commit()
	if err != nil {
		return fmt.Errorf("metadata: write %s: %w", key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: %s/%d epoch %d", ErrFenced, lead.Topic, lead.Partition, lead.Epoch)
	}
	return nil
}

// UpdatePartitionState stores a partition's offsets, fenced by lead: it
// fails with ErrFenced once lead is no longer the current leadership.
func (s *Store) UpdatePartitionState(ctx context.Context, lead Leadership, st PartitionState) error {
	v, _ := json.Marshal(st)
	return s.fencedPut(ctx, lead, s.partitionKey(lead.Topic, lead.Partition, "state"), string(v))
}

// Broker is a registered broker.
type Broker struct {
	ID      int32  `json:"id"`
	Address string `json:"address"`
	Rack    string `json:"rack,omitempty"`
}

// RegisterBroker puts the broker's key bound to lease: it disappears when
// the broker's session ends.
func (s *Store) RegisterBroker(ctx context.Context, b Broker, lease clientv3.LeaseID) error {
	v, _ := json.Marshal(b)
	if _, err := s.cli.Put(ctx, s.prefix+"brokers/"+strconv.Itoa(int(b.ID)), string(v), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("metadata: register broker %d: %w", b.ID, err)
	}
	return nil
}

// ListBrokers returns the live brokers, sorted by id.
func (s *Store) ListBrokers(ctx context.Context) ([]Broker, error) {
	resp, err := s.cli.Get(ctx, s.prefix+"brokers/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metadata: list brokers: %w", err)
	}
	var out []Broker
	for _, kv := range resp.Kvs {
		var b Broker
		if err := json.Unmarshal(kv.Value, &b); err != nil {
			return nil, fmt.Errorf("metadata: decode %s: %w", kv.Key, err)
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// IsUnavailable reports whether err means etcd could not be reached, as
// opposed to a domain error.
func IsUnavailable(err error) bool {
	return err != nil && !errors.Is(err, ErrTopicExists) && !errors.Is(err, ErrTopicNotFound) &&
		!errors.Is(err, ErrPartitionNotFound) && !errors.Is(err, ErrInvalidTopicName) &&
		!errors.Is(err, ErrLeaderExists) && !errors.Is(err, ErrFenced) && !errors.Is(err, ErrConflict)
}
