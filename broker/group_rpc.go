package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/strata-stream/strata/metadata"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// groupService implements stratav1.GroupServiceServer.
type groupService struct {
	stratav1.UnimplementedGroupServiceServer
	s *Server
}

// Request bounds.
const (
	maxGroupTopics     = 1000
	maxGroupPartitions = 100000
	maxMemberIDLength  = 100
	maxClientIDLength  = 255
)

// validateTopicPartitions checks a list of partitions by topic.
func validateTopicPartitions(list []*stratav1.TopicPartitions) ([]topicPartition, error) {
	var out []topicPartition
	for _, tps := range list {
		if err := metadata.ValidateTopicName(tps.GetTopic()); err != nil {
			return nil, err
		}
		for _, p := range tps.GetPartitions() {
			if p < 0 {
				return nil, fmt.Errorf("%w: partition %d of %s", ErrInvalidRequest, p, tps.GetTopic())
			}
			out = append(out, topicPartition{Topic: tps.GetTopic(), Partition: p})
		}
		if len(out) > maxGroupPartitions {
			return nil, fmt.Errorf("%w: more than %d partitions", ErrInvalidRequest, maxGroupPartitions)
		}
	}
	return out, nil
}

// groupTopicPartitions is the wire form of a partition list.
func groupTopicPartitions(tps []topicPartition) []*stratav1.TopicPartitions {
	sortTPs(tps)
	var out []*stratav1.TopicPartitions
	for _, tp := range tps {
		if n := len(out); n == 0 || out[n-1].Topic != tp.Topic {
			out = append(out, &stratav1.TopicPartitions{Topic: tp.Topic})
		}
		out[len(out)-1].Partitions = append(out[len(out)-1].Partitions, tp.Partition)
	}
	return out
}

// validateJoin checks a JoinGroup and applies the defaults and bounds.
func validateJoin(j *stratav1.JoinGroup, defaultSession time.Duration) (string, joinRequest, error) {
	if err := metadata.ValidateGroupName(j.GetGroup()); err != nil {
		return "", joinRequest{}, err
	}
	req := joinRequest{memberID: j.GetMemberId(), generation: j.GetGeneration(), clientID: j.GetClientId()}
	switch {
	case len(req.memberID) > maxMemberIDLength:
		return "", req, fmt.Errorf("%w: member id of %d characters", ErrInvalidRequest, len(req.memberID))
	case req.generation < 0:
		return "", req, fmt.Errorf("%w: negative generation %d", ErrInvalidRequest, req.generation)
	case req.memberID == "" && (req.generation != 0 || len(j.GetOwned()) > 0):
		return "", req, fmt.Errorf("%w: a new member has no generation and owns nothing", ErrInvalidRequest)
	case len(req.clientID) > maxClientIDLength:
		return "", req, fmt.Errorf("%w: client id of %d characters", ErrInvalidRequest, len(req.clientID))
	case len(j.GetTopics()) == 0 || len(j.GetTopics()) > maxGroupTopics:
		return "", req, fmt.Errorf("%w: %d topics, want 1 to %d", ErrInvalidRequest, len(j.GetTopics()), maxGroupTopics)
	}
	set := map[string]bool{}
	for _, t := range j.GetTopics() {
		if err := metadata.ValidateTopicName(t); err != nil {
			return "", req, err
		}
		set[t] = true
	}
	req.topics = slices.Sorted(maps.Keys(set))
	var err error
	if req.owned, err = validateTopicPartitions(j.GetOwned()); err != nil {
		return "", req, err
	}
	if req.assignor = j.GetAssignor(); req.assignor != "" {
		if err := validAssignor(req.assignor); err != nil {
			return "", req, err
		}
	}
	req.session = time.Duration(j.GetSessionTimeoutMs()) * time.Millisecond
	if req.session == 0 {
		req.session = defaultSession
	}
	req.session = min(max(req.session, minSessionTimeout), maxSessionTimeout)
	req.rebalance = time.Duration(j.GetRebalanceTimeoutMs()) * time.Millisecond
	if req.rebalance == 0 {
		req.rebalance = defaultRebalanceTimeout
	}
	req.rebalance = min(max(req.rebalance, minSessionTimeout), maxRebalanceTimeout)
	return j.GetGroup(), req, nil
}

func (gs groupService) FindCoordinator(ctx context.Context, req *stratav1.FindCoordinatorRequest) (*stratav1.FindCoordinatorResponse, error) {
	if err := metadata.ValidateGroupName(req.GetGroup()); err != nil {
		return nil, toStatus(err)
	}
	id, addr, err := gs.s.groups.find(ctx, req.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.FindCoordinatorResponse{BrokerId: id, Address: addr}, nil
}

// find returns the group's coordinator, becoming it when there is none.
func (c *coordinator) find(ctx context.Context, name string) (int32, string, error) {
	self := c.s.cfg.BrokerID
	select {
	case <-c.s.stopping:
		// Not while stopping: members would come back to a broker about
		// to end their streams; the key goes with the session.
		return -1, "", fmt.Errorf("%w: broker %d is shutting down", ErrNotCoordinator, self)
	default:
	}
	for range 3 {
		if c.loaded(name) != nil {
			return self, c.s.cfg.Advertise, nil
		}
		id, ok, err := c.s.store.GroupCoordinator(ctx, name)
		if err != nil {
			return -1, "", err
		}
		if ok && id != self {
			brokers, err := c.s.store.ListBrokers(ctx)
			if err != nil {
				return -1, "", err
			}
			for _, b := range brokers {
				if b.ID == id {
					return id, b.Address, nil
				}
			}
			return -1, "", fmt.Errorf("%w: group %s is coordinated by broker %d, which is not registered (its session is ending)", ErrNotCoordinator, name, id)
		}
		if _, err := c.group(ctx, name); err == nil {
			return self, c.s.cfg.Advertise, nil
		} else if !errors.Is(err, ErrNotCoordinator) {
			return -1, "", err
		}
	}
	return -1, "", fmt.Errorf("%w: group %s: the coordinator keeps moving", ErrNotCoordinator, name)
}

// Join serves a member's session: see stratav1.GroupServiceServer.
func (gs groupService) Join(stream stratav1.GroupService_JoinServer) error {
	s := gs.s
	first, err := stream.Recv()
	if err != nil {
		return err // the client went away
	}
	j := first.GetJoin()
	if j == nil {
		return toStatus(fmt.Errorf("%w: the first request of a Join stream must be a JoinGroup", ErrInvalidRequest))
	}
	name, req, err := validateJoin(j, s.groups.cfg.SessionTimeout)
	if err != nil {
		return toStatus(err)
	}
	select {
	case <-s.stopping:
		return toStatus(fmt.Errorf("%w: broker shutting down", ErrNotCoordinator))
	default:
	}
	if !s.leaseValid() {
		return toStatus(fmt.Errorf("%w: broker %d has no live etcd session", ErrNotCoordinator, s.cfg.BrokerID))
	}
	g, err := s.groups.group(stream.Context(), name)
	if err != nil {
		return toStatus(err)
	}
	ms := newMemberStream()
	id, err := g.join(req, ms, s.cfg.Now())
	if err != nil {
		return toStatus(err)
	}
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			now := s.cfg.Now()
			switch x := r.GetRequest().(type) {
			case *stratav1.JoinRequest_Heartbeat:
				if !s.leaseValid() {
					ms.fail(fmt.Errorf("%w: broker %d has no live etcd session", ErrNotCoordinator, s.cfg.BrokerID))
					return
				}
				err = g.heartbeat(id, ms, now)
			case *stratav1.JoinRequest_Ack:
				var owned []topicPartition
				if owned, err = validateTopicPartitions(x.Ack.GetOwned()); err == nil {
					err = g.ack(id, ms, x.Ack.GetEpoch(), owned, now)
				}
			case *stratav1.JoinRequest_Leave:
				g.leave(id, ms, now)
				ms.fail(nil)
				return
			default:
				err = fmt.Errorf("%w: after JoinGroup a stream carries heartbeats, acknowledgements and a leave", ErrInvalidRequest)
			}
			if err != nil {
				ms.fail(err)
				return
			}
		}
	}()
	for {
		select {
		case r := <-ms.ch:
			if err := stream.Send(r); err != nil {
				g.disconnect(id, ms)
				return err // the client went away
			}
		case <-ms.closed:
			if ms.err != nil {
				g.disconnect(id, ms)
			}
			return toStatus(ms.err)
		case <-recvDone:
			select {
			case <-ms.closed: // the receiver ended it (leave, bad request)
				if ms.err != nil {
					g.disconnect(id, ms)
				}
				return toStatus(ms.err)
			default:
			}
			// The client closed its side or went away without leaving: the
			// member stays until its session expires (it may rejoin).
			g.disconnect(id, ms)
			return nil
		case <-s.stopping:
			g.disconnect(id, ms)
			return toStatus(fmt.Errorf("%w: broker shutting down", ErrNotCoordinator))
		}
	}
}

// validateOffsets checks the offsets of a commit or reset.
func validateOffsets(list []*stratav1.PartitionOffset) (map[topicPartition]int64, error) {
	if len(list) == 0 || len(list) > maxGroupPartitions {
		return nil, fmt.Errorf("%w: %d offsets, want 1 to %d", ErrInvalidRequest, len(list), maxGroupPartitions)
	}
	out := make(map[topicPartition]int64, len(list))
	for _, po := range list {
		if err := metadata.ValidateTopicName(po.GetTopic()); err != nil {
			return nil, err
		}
		if po.GetPartition() < 0 || po.GetOffset() < 0 {
			return nil, fmt.Errorf("%w: offset %d of %s/%d", ErrInvalidRequest, po.GetOffset(), po.GetTopic(), po.GetPartition())
		}
		out[topicPartition{Topic: po.GetTopic(), Partition: po.GetPartition()}] = po.GetOffset()
	}
	return out, nil
}

func (gs groupService) CommitOffsets(ctx context.Context, req *stratav1.CommitOffsetsRequest) (*stratav1.CommitOffsetsResponse, error) {
	s := gs.s
	if err := metadata.ValidateGroupName(req.GetGroup()); err != nil {
		return nil, toStatus(err)
	}
	if req.GetMemberId() == "" || len(req.GetMemberId()) > maxMemberIDLength {
		return nil, toStatus(fmt.Errorf("%w: commits need the member id of a group member", ErrInvalidRequest))
	}
	offsets, err := validateOffsets(req.GetOffsets())
	if err != nil {
		return nil, toStatus(err)
	}
	if !s.leaseValid() {
		return nil, toStatus(fmt.Errorf("%w: broker %d has no live etcd session", ErrNotCoordinator, s.cfg.BrokerID))
	}
	g, err := s.groups.group(ctx, req.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	round, err := g.commit(req.GetMemberId(), req.GetGeneration(), offsets)
	if err != nil {
		return nil, toStatus(err)
	}
	select {
	case <-round.done:
		if round.err != nil {
			return nil, toStatus(round.err)
		}
		return &stratav1.CommitOffsetsResponse{}, nil
	case <-ctx.Done():
		return nil, toStatus(ctx.Err())
	}
}

// memberView is a member as DescribeGroup shows it.
type memberView struct {
	metadata.GroupMember
	owned []topicPartition
}

// liveView returns the members, epoch and assignor of a group loaded
// here (ok false when it is not).
func (c *coordinator) liveView(name string) (views []memberView, epoch int64, assignor string, ok bool) {
	g := c.loaded(name)
	if g == nil {
		return nil, 0, "", false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range g.sortedMembersLocked() {
		owned := slices.Collect(maps.Keys(m.held))
		if !m.reported {
			owned = m.loadedAssigned
		}
		views = append(views, memberView{GroupMember: metadata.GroupMember{
			ID: m.id, Generation: m.generation, ClientID: m.clientID, Topics: m.topics, SessionTimeoutMs: m.session.Milliseconds(),
		}, owned: owned})
	}
	return views, g.mu.epoch, g.mu.assignor, true
}

func (gs groupService) ListGroups(ctx context.Context, _ *stratav1.ListGroupsRequest) (*stratav1.ListGroupsResponse, error) {
	infos, err := gs.s.store.ListGroups(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &stratav1.ListGroupsResponse{}
	for _, info := range infos {
		sum := &stratav1.GroupSummary{Group: info.Name, Members: int32(len(info.State.Members)), CoordinatorId: info.Coordinator, Epoch: info.State.Epoch, Assignor: info.State.Assignor}
		if views, epoch, assignor, ok := gs.s.groups.liveView(info.Name); ok {
			sum.Members, sum.Epoch, sum.Assignor = int32(len(views)), epoch, assignor
		}
		resp.Groups = append(resp.Groups, sum)
	}
	return resp, nil
}

func (gs groupService) DescribeGroup(ctx context.Context, req *stratav1.DescribeGroupRequest) (*stratav1.DescribeGroupResponse, error) {
	s := gs.s
	info, err := s.store.ReadGroup(ctx, req.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &stratav1.DescribeGroupResponse{Group: info.Name, CoordinatorId: info.Coordinator, Epoch: info.State.Epoch, Assignor: info.State.Assignor}
	var views []memberView
	for _, m := range info.State.Members {
		v := memberView{GroupMember: m}
		for t, ps := range m.Assigned {
			for _, p := range ps {
				v.owned = append(v.owned, topicPartition{Topic: t, Partition: p})
			}
		}
		views = append(views, v)
	}
	if live, epoch, assignor, ok := s.groups.liveView(info.Name); ok {
		views, resp.Epoch, resp.Assignor = live, epoch, assignor
	}
	owner := map[topicPartition]string{}
	topics := map[string]bool{}
	for _, v := range views {
		resp.Members = append(resp.Members, &stratav1.GroupMemberDescription{
			MemberId: v.ID, Generation: v.Generation, ClientId: v.ClientID, Topics: v.Topics,
			Owned: groupTopicPartitions(slices.Clone(v.owned)), SessionTimeoutMs: uint32(v.SessionTimeoutMs),
		})
		for _, t := range v.Topics {
			topics[t] = true
		}
		for _, tp := range v.owned {
			owner[tp] = v.ID
		}
	}
	rows := map[topicPartition]bool{}
	for tp := range info.Offsets {
		rows[tp] = true
		topics[tp.Topic] = true
	}
	ends := map[topicPartition]int64{}
	for t := range topics {
		meta, err := s.store.GetTopic(ctx, t)
		if errors.Is(err, metadata.ErrTopicNotFound) {
			continue
		}
		if err != nil {
			return nil, toStatus(err)
		}
		e, err := s.logEnds(ctx, t, meta.Partitions)
		if err != nil {
			return nil, toStatus(err)
		}
		sub := subscribed(views, t)
		for p := range meta.Partitions {
			tp := topicPartition{Topic: t, Partition: p}
			ends[tp] = e[p]
			if sub {
				rows[tp] = true
			}
		}
	}
	list := slices.Collect(maps.Keys(rows))
	sortTPs(list)
	for _, tp := range list {
		pd := &stratav1.GroupPartitionDescription{Topic: tp.Topic, Partition: tp.Partition, MemberId: owner[tp], CommittedOffset: -1, LogEndOffset: -1, Lag: -1}
		if o, ok := info.Offsets[tp]; ok {
			pd.CommittedOffset = o
		}
		if e, ok := ends[tp]; ok {
			pd.LogEndOffset = e
		}
		if pd.CommittedOffset >= 0 && pd.LogEndOffset >= 0 {
			pd.Lag = max(0, pd.LogEndOffset-pd.CommittedOffset)
		}
		resp.Partitions = append(resp.Partitions, pd)
	}
	return resp, nil
}

func subscribed(views []memberView, topic string) bool {
	for _, v := range views {
		if slices.Contains(v.Topics, topic) {
			return true
		}
	}
	return false
}

// logEnds returns the high watermark of each partition of topic: from
// the local log for partitions led here, from etcd (as their leaders last
// recorded it) for the others.
func (s *Server) logEnds(ctx context.Context, topic string, n int32) (map[int32]int64, error) {
	out := make(map[int32]int64, n)
	for _, p := range s.partitionsOf(topic) {
		_, out[p.id] = p.offsets()
	}
	if len(out) < int(n) {
		states, err := s.store.GetPartitionStates(ctx, topic, n)
		if err != nil {
			return nil, err
		}
		for p := range n {
			if _, ok := out[p]; !ok {
				out[p] = states[p].HighWatermark
			}
		}
	}
	return out, nil
}

func (gs groupService) ResetOffsets(ctx context.Context, req *stratav1.ResetOffsetsRequest) (*stratav1.ResetOffsetsResponse, error) {
	if err := metadata.ValidateGroupName(req.GetGroup()); err != nil {
		return nil, toStatus(err)
	}
	offsets, err := validateOffsets(req.GetOffsets())
	if err != nil {
		return nil, toStatus(err)
	}
	prev, err := gs.s.store.ResetGroupOffsets(ctx, req.GetGroup(), offsets)
	if err != nil {
		return nil, toStatus(err)
	}
	tps := slices.Collect(maps.Keys(prev))
	sortTPs(tps)
	resp := &stratav1.ResetOffsetsResponse{}
	for _, tp := range tps {
		resp.Previous = append(resp.Previous, &stratav1.PartitionOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: prev[tp]})
	}
	return resp, nil
}

func (gs groupService) DeleteGroup(ctx context.Context, req *stratav1.DeleteGroupRequest) (*stratav1.DeleteGroupResponse, error) {
	if err := gs.s.store.DeleteGroup(ctx, req.GetGroup()); err != nil {
		return nil, toStatus(err)
	}
	if g := gs.s.groups.loaded(req.GetGroup()); g != nil {
		gs.s.groups.unload(g, fmt.Errorf("%w: group %s was deleted", ErrNotCoordinator, req.GetGroup()), false)
	}
	return &stratav1.DeleteGroupResponse{}, nil
}
