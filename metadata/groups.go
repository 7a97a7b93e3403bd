package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return tp.Topic + "/" + strconv.Itoa(int(tp.Partition)) }

// Less orders partitions by topic, then number.
func (tp TopicPartition) Less(o TopicPartition) bool {
	if tp.Topic != o.Topic {
		return tp.Topic < o.Topic
	}
	return tp.Partition < o.Partition
}

// SortTopicPartitions sorts tps by topic, then number.
func SortTopicPartitions(tps []TopicPartition) {
	sort.Slice(tps, func(i, j int) bool { return tps[i].Less(tps[j]) })
}

// GroupState is the value of groups/<group>/state: the group's epoch,
// assignor and members, written by its coordinator (fenced by the
// coordinator key). A member's Assigned is what it owned when the state
// was written: for describing the group; a new coordinator asks the
// members themselves.
type GroupState struct {
	Group     string        `json:"group"`
	Epoch     int64         `json:"epoch"`
	Assignor  string        `json:"assignor,omitempty"`
	Members   []GroupMember `json:"members"`
	UpdatedMs int64         `json:"updated_ms"`
}

// GroupMember is one member of a group.
type GroupMember struct {
	ID                 string             `json:"id"`
	Generation         int64              `json:"generation"`
	ClientID           string             `json:"client_id,omitempty"`
	Topics             []string           `json:"topics"`
	SessionTimeoutMs   int64              `json:"session_timeout_ms"`
	RebalanceTimeoutMs int64              `json:"rebalance_timeout_ms"`
	Assigned           map[string][]int32 `json:"assigned,omitempty"`
}

// groupOffset is the value of offsets/<group>/<topic>/<p>.
type groupOffset struct {
	Offset      int64 `json:"offset"`
	CommittedMs int64 `json:"committed_ms"`
}

// GroupFence is a coordinator's proof of coordinating a group: its writes
// are fenced by the coordinator key's mod revision.
type GroupFence struct {
	Group       string
	ModRevision int64
}

// GroupInfo is what etcd holds about a group.
type GroupInfo struct {
	Name string
	// State is the zero value (no members) when HasState is false.
	State    GroupState
	HasState bool
	// StateRevision is the state key's mod revision (0: absent).
	StateRevision int64
	// Coordinator is the coordinating broker's id, -1 when none.
	Coordinator int32
	// Offsets are the committed offsets (nil from ListGroups).
	Offsets map[TopicPartition]int64
}

// maxGroupTxnOps bounds the puts of one group transaction, under etcd's
// default limit of 128 operations per transaction.
const maxGroupTxnOps = 120

func (s *Store) groupPrefix(group string) string    { return s.prefix + "groups/" + group + "/" }
func (s *Store) coordinatorKey(group string) string { return s.groupPrefix(group) + "coordinator" }
func (s *Store) groupStateKey(group string) string  { return s.groupPrefix(group) + "state" }
func (s *Store) offsetsPrefix(group string) string  { return s.prefix + "offsets/" + group + "/" }
func (s *Store) offsetKey(group string, tp TopicPartition) string {
	return s.offsetsPrefix(group) + tp.Topic + "/" + strconv.Itoa(int(tp.Partition))
}

// AcquireGroupCoordinator makes brokerID the coordinator of group, bound
// to lease. It fails with ErrCoordinatorExists while a coordinator key of
// another lease is alive. A key left by the same lease is taken over with
// a new mod revision, which fences the earlier holder of this session.
func (s *Store) AcquireGroupCoordinator(ctx context.Context, group string, brokerID int32, lease clientv3.LeaseID) (GroupFence, error) {
	if err := ValidateGroupName(group); err != nil {
		return GroupFence{}, err
	}
	key := s.coordinatorKey(group)
	for range 10 {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return GroupFence{}, fmt.Errorf("metadata: read coordinator of group %s: %w", group, err)
		}
		var rev int64
		if len(resp.Kvs) > 0 {
			kv := resp.Kvs[0]
			if clientv3.LeaseID(kv.Lease) != lease {
				id, _ := strconv.ParseInt(string(kv.Value), 10, 32)
				return GroupFence{}, fmt.Errorf("%w: group %s is coordinated by broker %d", ErrCoordinatorExists, group, id)
			}
			rev = kv.ModRevision
		}
		txn, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, strconv.Itoa(int(brokerID)), clientv3.WithLease(lease))).
			Commit()
		if err != nil {
			return GroupFence{}, fmt.Errorf("metadata: take coordinator of group %s: %w", group, err)
		}
		if txn.Succeeded {
			return GroupFence{Group: group, ModRevision: txn.Header.Revision}, nil
		}
	}
	return GroupFence{}, fmt.Errorf("%w: taking the coordinator of group %s", ErrConflict, group)
}

// GroupCoordinator returns the broker coordinating group; ok is false
// when none does.
func (s *Store) GroupCoordinator(ctx context.Context, group string) (int32, bool, error) {
	resp, err := s.cli.Get(ctx, s.coordinatorKey(group))
	if err != nil {
		return -1, false, fmt.Errorf("metadata: read coordinator of group %s: %w", group, err)
	}
	if len(resp.Kvs) == 0 {
		return -1, false, nil
	}
	id, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 32)
	if err != nil {
		return -1, false, fmt.Errorf("metadata: coordinator of group %s: bad value %q", group, resp.Kvs[0].Value)
	}
	return int32(id), true, nil
}

// ReleaseGroupCoordinator deletes the coordinator key if fence is still
// current (a no-op otherwise).
func (s *Store) ReleaseGroupCoordinator(ctx context.Context, fence GroupFence) error {
	_, err := s.cli.Txn(ctx).
		If(s.groupFence(fence)).
		Then(clientv3.OpDelete(s.coordinatorKey(fence.Group))).
		Commit()
	if err != nil {
		return fmt.Errorf("metadata: release coordinator of group %s: %w", fence.Group, err)
	}
	return nil
}

// CommitGroup writes a group's state (unless nil) and committed offsets,
// fenced by the coordinator key: in one transaction when they fit in
// maxGroupTxnOps puts (the state counts as one), in several otherwise,
// each fenced. It fails with ErrFenced once fence is no longer current;
// the transactions before the failed one are committed.
func (s *Store) CommitGroup(ctx context.Context, fence GroupFence, state *GroupState, offsets map[TopicPartition]int64) error {
	var ops []clientv3.Op
	if state != nil {
		v, err := json.Marshal(state)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(s.groupStateKey(fence.Group), string(v)))
	}
	tps := make([]TopicPartition, 0, len(offsets))
	for tp := range offsets {
		tps = append(tps, tp)
	}
	SortTopicPartitions(tps)
	ms := s.now().UnixMilli()
	for _, tp := range tps {
		v, _ := json.Marshal(groupOffset{Offset: offsets[tp], CommittedMs: ms})
		ops = append(ops, clientv3.OpPut(s.offsetKey(fence.Group, tp), string(v)))
	}
	ok, err := s.txnInChunks(ctx, maxGroupTxnOps, ops, s.groupFence(fence))
	if err != nil {
		return fmt.Errorf("metadata: commit group %s: %w", fence.Group, err)
	}
	if !ok {
		return fmt.Errorf("%w: coordinator of group %s (revision %d)", ErrFenced, fence.Group, fence.ModRevision)
	}
	return nil
}

// groupFence holds while fence is the group's current coordinator: the
// comparison of every write of the coordinator.
func (s *Store) groupFence(fence GroupFence) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(s.coordinatorKey(fence.Group)), "=", fence.ModRevision)
}

// ReadGroup returns what etcd holds about group (one consistent read), or
// ErrGroupNotFound when it holds nothing.
func (s *Store) ReadGroup(ctx context.Context, group string) (GroupInfo, error) {
	if err := ValidateGroupName(group); err != nil {
		return GroupInfo{}, err
	}
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.groupStateKey(group)),
		clientv3.OpGet(s.coordinatorKey(group)),
		clientv3.OpGet(s.offsetsPrefix(group), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return GroupInfo{}, fmt.Errorf("metadata: read group %s: %w", group, err)
	}
	info := GroupInfo{Name: group, Coordinator: -1}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if info.State, err = DecodeGroupState(kvs[0].Value); err != nil {
			return info, fmt.Errorf("metadata: state of group %s: %w", group, err)
		}
		info.HasState, info.StateRevision = true, kvs[0].ModRevision
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		if id, err := strconv.ParseInt(string(kvs[0].Value), 10, 32); err == nil {
			info.Coordinator = int32(id)
		}
	}
	if info.Offsets, err = s.decodeOffsets(group, resp.Responses[2].GetResponseRange().Kvs); err != nil {
		return info, err
	}
	if !info.HasState && info.Coordinator < 0 && len(info.Offsets) == 0 {
		return info, fmt.Errorf("%w: %s", ErrGroupNotFound, group)
	}
	return info, nil
}

// GroupOffsets returns a group's committed offsets.
func (s *Store) GroupOffsets(ctx context.Context, group string) (map[TopicPartition]int64, error) {
	resp, err := s.cli.Get(ctx, s.offsetsPrefix(group), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metadata: read offsets of group %s: %w", group, err)
	}
	return s.decodeOffsets(group, resp.Kvs)
}

func (s *Store) decodeOffsets(group string, kvs []*mvccpb.KeyValue) (map[TopicPartition]int64, error) {
	prefix := s.offsetsPrefix(group)
	out := make(map[TopicPartition]int64, len(kvs))
	for _, kv := range kvs {
		tp, ok := parseOffsetKey(strings.TrimPrefix(string(kv.Key), prefix))
		if !ok {
			continue
		}
		o, err := decodeGroupOffset(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("metadata: committed offset %s: %w", kv.Key, err)
		}
		out[tp] = o
	}
	return out, nil
}

// decodeGroupOffset decodes and checks an offsets/<group>/<topic>/<p>
// value: a committed offset is not negative. Errors wrap
// ErrCorruptGroupState.
func decodeGroupOffset(b []byte) (int64, error) {
	var o groupOffset
	if err := json.Unmarshal(b, &o); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrCorruptGroupState, err)
	}
	if o.Offset < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrCorruptGroupState, o.Offset)
	}
	return o.Offset, nil
}

// parseOffsetKey parses "<topic>/<p>".
func parseOffsetKey(rest string) (TopicPartition, bool) {
	topic, part, ok := strings.Cut(rest, "/")
	if !ok || topic == "" {
		return TopicPartition{}, false
	}
	p, err := strconv.ParseInt(part, 10, 32)
	if err != nil || p < 0 {
		return TopicPartition{}, false
	}
	return TopicPartition{Topic: topic, Partition: int32(p)}, true
}

// ListGroups returns every group with a state, a coordinator or committed
// offsets, sorted by name (Offsets left nil).
func (s *Store) ListGroups(ctx context.Context) ([]GroupInfo, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.prefix+"groups/", clientv3.WithPrefix()),
		clientv3.OpGet(s.prefix+"offsets/", clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("metadata: list groups: %w", err)
	}
	groups := map[string]*GroupInfo{}
	get := func(name string) *GroupInfo {
		if g, ok := groups[name]; ok {
			return g
		}
		g := &GroupInfo{Name: name, Coordinator: -1}
		groups[name] = g
		return g
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		name, leaf, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), s.prefix+"groups/"), "/")
		if !ok {
			continue
		}
		switch leaf {
		case "state":
			g := get(name)
			if g.State, err = DecodeGroupState(kv.Value); err != nil {
				return nil, fmt.Errorf("metadata: state of group %s: %w", name, err)
			}
			g.HasState, g.StateRevision = true, kv.ModRevision
		case "coordinator":
			if id, err := strconv.ParseInt(string(kv.Value), 10, 32); err == nil {
				get(name).Coordinator = int32(id)
			}
		}
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		if name, _, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), s.prefix+"offsets/"), "/"); ok {
			get(name)
		}
	}
	out := make([]GroupInfo, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ResetGroupOffsets sets committed offsets of a group without members and
// returns the offsets they replace (-1 where none was committed). It fails
// with ErrGroupNotEmpty while the group's state lists members; the check
// and the writes are one transaction per maxGroupTxnOps offsets, each
// requiring the state unchanged, so a coordinator admitting a member
// meanwhile (it writes the state first) makes the reset fail; the
// transactions before the failed one (of more than maxGroupTxnOps
// offsets) stay applied.
func (s *Store) ResetGroupOffsets(ctx context.Context, group string, offsets map[TopicPartition]int64) (map[TopicPartition]int64, error) {
	if err := ValidateGroupName(group); err != nil {
		return nil, err
	}
	tps := make([]TopicPartition, 0, len(offsets))
	for tp, o := range offsets {
		if o < 0 {
			return nil, fmt.Errorf("%w: offset %d for %s", ErrInvalidOffset, o, tp)
		}
		if err := ValidateTopicName(tp.Topic); err != nil {
			return nil, err
		}
		tps = append(tps, tp)
	}
	SortTopicPartitions(tps)
	stateKey := s.groupStateKey(group)
	for range 10 {
		resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(stateKey), clientv3.OpGet(s.offsetsPrefix(group), clientv3.WithPrefix())).Commit()
		if err != nil {
			return nil, fmt.Errorf("metadata: read group %s: %w", group, err)
		}
		var rev int64
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			st, err := DecodeGroupState(kvs[0].Value)
			if err != nil {
				return nil, fmt.Errorf("metadata: state of group %s: %w", group, err)
			}
			if err := notEmpty(st); err != nil {
				return nil, err
			}
			rev = kvs[0].ModRevision
		}
		current, err := s.decodeOffsets(group, resp.Responses[1].GetResponseRange().Kvs)
		if err != nil {
			return nil, err
		}
		prev := make(map[TopicPartition]int64, len(tps))
		ms := s.now().UnixMilli()
		var ops []clientv3.Op
		for _, tp := range tps {
			prev[tp] = -1
			if o, ok := current[tp]; ok {
				prev[tp] = o
			}
			v, _ := json.Marshal(groupOffset{Offset: offsets[tp], CommittedMs: ms})
			ops = append(ops, clientv3.OpPut(s.offsetKey(group, tp), string(v)))
		}
		ok, err := s.txnInChunks(ctx, maxGroupTxnOps, ops, clientv3.Compare(clientv3.ModRevision(stateKey), "=", rev))
		if err != nil {
			return nil, fmt.Errorf("metadata: reset offsets of group %s: %w", group, err)
		}
		if ok {
			return prev, nil
		}
	}
	return nil, fmt.Errorf("%w: resetting offsets of group %s", ErrConflict, group)
}

// DeleteGroup deletes a group without members: its state, coordinator key
// and committed offsets, in one transaction that requires the state
// unchanged. It fails with ErrGroupNotEmpty while the state lists members
// and with ErrGroupNotFound when etcd holds nothing of the group.
func (s *Store) DeleteGroup(ctx context.Context, group string) error {
	for range 10 {
		info, err := s.ReadGroup(ctx, group)
		if err != nil {
			return err
		}
		if err := notEmpty(info.State); err != nil {
			return err
		}
		txn, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.groupStateKey(group)), "=", info.StateRevision)).
			Then(clientv3.OpDelete(s.groupPrefix(group), clientv3.WithPrefix()),
				clientv3.OpDelete(s.offsetsPrefix(group), clientv3.WithPrefix())).
			Commit()
		if err != nil {
			return fmt.Errorf("metadata: delete group %s: %w", group, err)
		}
		if txn.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("%w: deleting group %s", ErrConflict, group)
}

// notEmpty is ErrGroupNotEmpty when st lists members.
func notEmpty(st GroupState) error {
	if n := len(st.Members); n > 0 {
		ids := make([]string, 0, min(n, 3))
		for _, m := range st.Members[:min(n, 3)] {
			ids = append(ids, m.ID)
		}
		more := ""
		if n > 3 {
			more = ", ..."
		}
		return fmt.Errorf("%w: group %s has %d active member(s) (%s%s); stop its consumers first", ErrGroupNotEmpty, st.Group, n, strings.Join(ids, ", "), more)
	}
	return nil
}

// DecodeGroupState decodes and checks a groups/<group>/state value.
func DecodeGroupState(b []byte) (GroupState, error) {
	var st GroupState
	if err := json.Unmarshal(b, &st); err != nil {
		return GroupState{}, fmt.Errorf("%w: %v", ErrCorruptGroupState, err)
	}
	if err := ValidateGroupName(st.Group); err != nil {
		return GroupState{}, fmt.Errorf("%w: %v", ErrCorruptGroupState, err)
	}
	if st.Epoch < 0 {
		return GroupState{}, fmt.Errorf("%w: epoch %d", ErrCorruptGroupState, st.Epoch)
	}
	seen := map[string]bool{}
	for _, m := range st.Members {
		if m.ID == "" || seen[m.ID] {
			return GroupState{}, fmt.Errorf("%w: member id %q empty or repeated", ErrCorruptGroupState, m.ID)
		}
		seen[m.ID] = true
		if m.Generation < 0 || m.SessionTimeoutMs <= 0 || m.RebalanceTimeoutMs <= 0 || len(m.Topics) == 0 {
			return GroupState{}, fmt.Errorf("%w: member %s: generation %d, timeouts %d/%d ms, %d topics", ErrCorruptGroupState, m.ID, m.Generation, m.SessionTimeoutMs, m.RebalanceTimeoutMs, len(m.Topics))
		}
		for _, t := range m.Topics {
			if err := ValidateTopicName(t); err != nil {
				return GroupState{}, fmt.Errorf("%w: member %s: %v", ErrCorruptGroupState, m.ID, err)
			}
		}
		for t, ps := range m.Assigned {
			for _, p := range ps {
				if p < 0 {
					return GroupState{}, fmt.Errorf("%w: member %s: partition %s/%d", ErrCorruptGroupState, m.ID, t, p)
				}
			}
		}
	}
	return st, nil
}

// isGroupError reports whether err is a group domain error (not an etcd
// failure).
func isGroupError(err error) bool {
	return errors.Is(err, ErrInvalidGroupName) || errors.Is(err, ErrGroupNotFound) || errors.Is(err, ErrGroupNotEmpty) ||
		errors.Is(err, ErrCoordinatorExists) || errors.Is(err, ErrCorruptGroupState) || errors.Is(err, ErrInvalidOffset)
}
