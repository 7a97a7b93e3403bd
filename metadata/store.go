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

	"go.etcd.io/etcd/api/v3/mvccpb"
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

// CreateTopic creates t. It fills t.ID and t.CreatedMs and returns the
// stored topic, or ErrTopicExists. Partition keys are created by their
// first leader (AcquireLeadership), so that a topic of any partition count
// is one etcd operation (etcd bounds a transaction to 128 operations).
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
	key := s.topicKey(t.Name)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(tv))).
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
// transaction and returns the deleted topic, or ErrTopicNotFound.
func (s *Store) DeleteTopic(ctx context.Context, name string) (Topic, error) {
	key := s.topicKey(name)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
		Then(clientv3.OpGet(key), clientv3.OpDelete(key), clientv3.OpDelete(s.partitionPrefix(name), clientv3.WithPrefix()),
			clientv3.OpDelete(s.assignmentPrefix()+name+"/", clientv3.WithPrefix())).
		Commit()
	if err != nil {
		return Topic{}, fmt.Errorf("metadata: delete topic %s: %w", name, err)
	}
	if !resp.Succeeded {
		return Topic{}, fmt.Errorf("%w: %s", ErrTopicNotFound, name)
	}
	var t Topic
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if err := json.Unmarshal(kvs[0].Value, &t); err != nil {
			return t, fmt.Errorf("metadata: decode deleted topic %s: %w", name, err)
		}
	}
	return t, nil
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

// GetPartitionState returns a partition's offsets (zero until its leader
// first writes them), or ErrPartitionNotFound.
func (s *Store) GetPartitionState(ctx context.Context, topic string, p int32) (PartitionState, error) {
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.topicKey(topic)), clientv3.OpGet(s.partitionKey(topic, p, "state"))).Commit()
	if err != nil {
		return PartitionState{}, fmt.Errorf("metadata: get state of %s/%d: %w", topic, p, err)
	}
	if _, err := s.decodePartition(resp.Responses[0].GetResponseRange().Kvs, topic, "", p); err != nil {
		return PartitionState{}, err
	}
	var st PartitionState
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		if err := json.Unmarshal(kvs[0].Value, &st); err != nil {
			return st, fmt.Errorf("metadata: decode state of %s/%d: %w", topic, p, err)
		}
	}
	return st, nil
}

// decodePartition checks that the topic key (kvs, from a Get) holds topic
// (of the incarnation id, unless id is empty) and that it has partition p.
func (s *Store) decodePartition(kvs []*mvccpb.KeyValue, topic, id string, p int32) (Topic, error) {
	if len(kvs) == 0 {
		return Topic{}, fmt.Errorf("%w: %s/%d (no such topic)", ErrPartitionNotFound, topic, p)
	}
	var t Topic
	if err := json.Unmarshal(kvs[0].Value, &t); err != nil {
		return t, fmt.Errorf("metadata: decode topic %s: %w", topic, err)
	}
	if id != "" && t.ID != id {
		return t, fmt.Errorf("%w: %s/%d (the topic was deleted and recreated)", ErrPartitionNotFound, topic, p)
	}
	if p < 0 || p >= t.Partitions {
		return t, fmt.Errorf("%w: %s/%d (the topic has %d partitions)", ErrPartitionNotFound, topic, p, t.Partitions)
	}
	return t, nil
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
	// RunStart is the first epoch of this broker's current run of
	// leaderships of the partition: every epoch from RunStart to Epoch was
	// taken by this broker (some perhaps by attempts that failed), none by
	// another. A local log the broker recorded at an epoch ≥ RunStart is
	// still the partition's latest.
	RunStart int64
}

// epochRecord is the value of partitions/<t>/<p>/epoch: the last epoch,
// who took it, and the first epoch of that broker's current run. (A plain
// decimal, written by earlier versions, is an epoch of unknown holder.)
type epochRecord struct {
	Epoch    int64 `json:"epoch"`
	BrokerID int32 `json:"broker_id"`
	RunStart int64 `json:"run_start"`
}

func parseEpochRecord(b []byte) (epochRecord, error) {
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		return epochRecord{Epoch: n, BrokerID: -1, RunStart: n}, nil
	}
	var r epochRecord
	err := json.Unmarshal(b, &r)
	return r, err
}

// AcquireLeadership makes brokerID the leader of partition p of topic t
// (the incarnation t.ID) with a new epoch, bound to lease. It fails with
// ErrLeaderExists while a leader key of another lease is alive, and with
// ErrPartitionNotFound when the partition does not exist or the topic was
// recreated. A leader key left by the same lease (a leadership this
// session dropped without releasing) is taken over with a new epoch, which
// fences the old one.
func (s *Store) AcquireLeadership(ctx context.Context, t Topic, p int32, brokerID int32, lease clientv3.LeaseID) (Leadership, error) {
	topicKey := s.topicKey(t.Name)
	leaderKey, epochKey := s.partitionKey(t.Name, p, "leader"), s.partitionKey(t.Name, p, "epoch")
	for range 10 {
		resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(topicKey), clientv3.OpGet(epochKey), clientv3.OpGet(leaderKey)).Commit()
		if err != nil {
			return Leadership{}, fmt.Errorf("metadata: read leadership of %s/%d: %w", t.Name, p, err)
		}
		topicKvs := resp.Responses[0].GetResponseRange().Kvs
		if _, err := s.decodePartition(topicKvs, t.Name, t.ID, p); err != nil {
			return Leadership{}, err
		}
		var epochRev, leaderRev int64
		prev := epochRecord{BrokerID: -1}
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			if prev, err = parseEpochRecord(kvs[0].Value); err != nil {
				return Leadership{}, fmt.Errorf("metadata: epoch of %s/%d: %w", t.Name, p, err)
			}
			epochRev = kvs[0].ModRevision
		}
		epoch := prev.Epoch
		if kvs := resp.Responses[2].GetResponseRange().Kvs; len(kvs) > 0 {
			if clientv3.LeaseID(kvs[0].Lease) != lease {
				var cur Leader
				_ = json.Unmarshal(kvs[0].Value, &cur)
				return Leadership{}, fmt.Errorf("%w: %s/%d is led by broker %d (epoch %d)", ErrLeaderExists, t.Name, p, cur.BrokerID, cur.Epoch)
			}
			leaderRev = kvs[0].ModRevision
		}
		l := Leader{BrokerID: brokerID, Epoch: epoch + 1}
		lv, _ := json.Marshal(l)
		rec := epochRecord{Epoch: l.Epoch, BrokerID: brokerID, RunStart: l.Epoch}
		if prev.BrokerID == brokerID || prev.BrokerID == -1 && epoch > 0 {
			// The run goes on (for an epoch of unknown holder, as before:
			// only a log recorded at exactly that epoch is kept).
			rec.RunStart = prev.RunStart
		}
		rv, _ := json.Marshal(rec)
		txn, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(topicKey), "=", topicKvs[0].ModRevision),
				clientv3.Compare(clientv3.ModRevision(epochKey), "=", epochRev),
				clientv3.Compare(clientv3.ModRevision(leaderKey), "=", leaderRev)).
			Then(clientv3.OpPut(epochKey, string(rv)),
				clientv3.OpPut(leaderKey, string(lv), clientv3.WithLease(lease))).
			Commit()
		if err != nil {
			return Leadership{}, fmt.Errorf("metadata: take leadership of %s/%d: %w", t.Name, p, err)
		}
		if txn.Succeeded {
			return Leadership{Topic: t.Name, Partition: p, Leader: l, ModRevision: txn.Header.Revision, RunStart: rec.RunStart}, nil
		}
	}
	return Leadership{}, fmt.Errorf("%w: taking leadership of %s/%d", ErrConflict, t.Name, p)
}

// ReleaseLeadership deletes the leader key if lead is still current, so
// another broker (or this one, later) can lead the partition at once. It
// is a no-op when lead was already lost.
func (s *Store) ReleaseLeadership(ctx context.Context, lead Leadership) error {
	_, err := s.cli.Txn(ctx).
		If(s.leaderFence(lead)).
		Then(clientv3.OpDelete(s.leaderKey(lead))).
		Commit()
	if err != nil {
		return fmt.Errorf("metadata: release leadership of %s/%d: %w", lead.Topic, lead.Partition, err)
	}
	return nil
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

// GetLeaders returns the live leaders of the partitions [0, n) of topic
// (partitions without one are absent), reading up to maxTxnPuts leader
// keys per round trip.
func (s *Store) GetLeaders(ctx context.Context, topic string, n int32) (map[int32]Leader, error) {
	return getPartitionValues[Leader](ctx, s, topic, n, "leader")
}

// GetPartitionStates returns the recorded offsets of the partitions [0, n)
// of topic (partitions without a state key are absent), reading up to
// maxTxnPuts keys per round trip.
func (s *Store) GetPartitionStates(ctx context.Context, topic string, n int32) (map[int32]PartitionState, error) {
	return getPartitionValues[PartitionState](ctx, s, topic, n, "state")
}

// getPartitionValues decodes the leaf key of each partition [0, n) of
// topic that has one, reading up to maxTxnPuts keys per round trip.
func getPartitionValues[V any](ctx context.Context, s *Store, topic string, n int32, leaf string) (map[int32]V, error) {
	out := map[int32]V{}
	for lo := int32(0); lo < n; lo += maxTxnPuts {
		hi := min(n, lo+maxTxnPuts)
		ops := make([]clientv3.Op, 0, hi-lo)
		for p := lo; p < hi; p++ {
			ops = append(ops, clientv3.OpGet(s.partitionKey(topic, p, leaf)))
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("metadata: get %ss of %s: %w", leaf, topic, err)
		}
		for i, r := range resp.Responses {
			kvs := r.GetResponseRange().Kvs
			if len(kvs) == 0 {
				continue
			}
			var v V
			if err := json.Unmarshal(kvs[0].Value, &v); err != nil {
				return nil, fmt.Errorf("metadata: decode %s of %s/%d: %w", leaf, topic, lo+int32(i), err)
			}
			out[lo+int32(i)] = v
		}
	}
	return out, nil
}

// leaderKey is the leader key of lead's partition.
func (s *Store) leaderKey(lead Leadership) string {
	return s.partitionKey(lead.Topic, lead.Partition, "leader")
}

// leaderFence holds while lead is the partition's current leadership: the
// comparison of every write that depends on it.
func (s *Store) leaderFence(lead Leadership) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(s.leaderKey(lead)), "=", lead.ModRevision)
}

// fencedPut writes key=value only while lead is current.
func (s *Store) fencedPut(ctx context.Context, lead Leadership, key, value string) error {
	resp, err := s.cli.Txn(ctx).
		If(s.leaderFence(lead)).
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

// txnInChunks commits ops in order, in transactions of up to maxOps
// operations, each guarded by cmps. It reports false at the first
// transaction whose guard fails; the ones before it stay applied.
func (s *Store) txnInChunks(ctx context.Context, maxOps int, ops []clientv3.Op, cmps ...clientv3.Cmp) (bool, error) {
	for len(ops) > 0 {
		chunk := ops[:min(len(ops), maxOps)]
		ops = ops[len(chunk):]
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(chunk...).Commit()
		if err != nil {
			return false, err
		}
		if !resp.Succeeded {
			return false, nil
		}
	}
	return true, nil
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
func (s *Store) brokerKey(id int32) string { return s.prefix + "brokers/" + strconv.Itoa(int(id)) }

// BrokerLease returns the lease a broker's registration lives on (ok is
// false when the broker is not registered).
func (s *Store) BrokerLease(ctx context.Context, id int32) (clientv3.LeaseID, bool, error) {
	resp, err := s.cli.Get(ctx, s.brokerKey(id))
	if err != nil {
		return 0, false, fmt.Errorf("metadata: read registration of broker %d: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, false, nil
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease), true, nil
}

func (s *Store) RegisterBroker(ctx context.Context, b Broker, lease clientv3.LeaseID) error {
	v, _ := json.Marshal(b)
	if _, err := s.cli.Put(ctx, s.brokerKey(b.ID), string(v), clientv3.WithLease(lease)); err != nil {
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
		!errors.Is(err, ErrLeaderExists) && !errors.Is(err, ErrFenced) && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrManifestChanged) &&
		!isGroupError(err)
}
