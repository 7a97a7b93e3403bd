package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ControllerPrefix is the election prefix of the controller (under the
// cluster prefix): the broker whose campaign key there is the oldest is
// the controller.
func (s *Store) ControllerPrefix() string { return s.prefix + "controller" }

// ControllerFence is what a controller's writes are fenced by: its
// election key and that key's create revision (concurrency.Election's
// Key and Rev).
type ControllerFence struct {
	Key string
	Rev int64
}

// Assignment is which broker should lead a partition.
type Assignment struct {
	BrokerID int32 `json:"broker_id"`
}

// assignmentPrefix holds the assignments, apart from the partitions'
// other keys so that reading them all is one short range read.
func (s *Store) assignmentPrefix() string { return s.prefix + "assignments/" }

func (s *Store) assignmentKey(topic string, p int32) string {
	return s.assignmentPrefix() + topic + "/" + strconv.Itoa(int(p))
}

// maxTxnPuts keeps a transaction under etcd's default limit of 128
// operations.
const maxTxnPuts = 100

// SetAssignments writes assignments (partition → broker) of one topic,
// each transaction fenced by the controller's election key and the topic's
// existence: a deposed controller writes nothing (ErrFenced). Large
// topics take several transactions of up to maxTxnPuts partitions.
func (s *Store) SetAssignments(ctx context.Context, fence ControllerFence, topic string, as map[int32]int32) error {
	var ops []clientv3.Op
	for p, b := range as {
		v, _ := json.Marshal(Assignment{BrokerID: b})
		ops = append(ops, clientv3.OpPut(s.assignmentKey(topic, p), string(v)))
	}
	ok, err := s.txnInChunks(ctx, maxTxnPuts, ops,
		clientv3.Compare(clientv3.CreateRevision(fence.Key), "=", fence.Rev),
		clientv3.Compare(clientv3.CreateRevision(s.topicKey(topic)), ">", 0))
	if err != nil {
		return fmt.Errorf("metadata: assign partitions of %s: %w", topic, err)
	}
	if !ok {
		return fmt.Errorf("%w: controller %s (rev %d) or topic %s gone", ErrFenced, fence.Key, fence.Rev, topic)
	}
	return nil
}

// ListAssignments returns every partition's assigned broker, by topic and
// partition.
func (s *Store) ListAssignments(ctx context.Context) (map[string]map[int32]int32, error) {
	prefix := s.assignmentPrefix()
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metadata: list assignments: %w", err)
	}
	out := map[string]map[int32]int32{}
	for _, kv := range resp.Kvs {
		topic, part, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), prefix), "/")
		if !ok {
			continue
		}
		p, err := strconv.ParseInt(part, 10, 32)
		if err != nil {
			continue
		}
		var a Assignment
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			return nil, fmt.Errorf("metadata: decode %s: %w", kv.Key, err)
		}
		if out[topic] == nil {
			out[topic] = map[int32]int32{}
		}
		out[topic][int32(p)] = a.BrokerID
	}
	return out, nil
}

// ControllerID returns the broker id of the current controller (-1 when
// none): the value of the oldest campaign key.
func (s *Store) ControllerID(ctx context.Context) (int32, error) {
	resp, err := s.cli.Get(ctx, s.ControllerPrefix()+"/", append([]clientv3.OpOption{clientv3.WithPrefix()}, clientv3.WithFirstCreate()...)...)
	if err != nil {
		return -1, fmt.Errorf("metadata: controller: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return -1, nil
	}
	id, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 32)
	if err != nil {
		return -1, fmt.Errorf("metadata: controller value %q: %w", resp.Kvs[0].Value, err)
	}
	return int32(id), nil
}
