package broker

import (
	"context"
	"fmt"
	"maps"

	"github.com/strata-stream/strata/metadata"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// adminService implements stratav1.AdminServiceServer.
type adminService struct {
	stratav1.UnimplementedAdminServiceServer
	s *Server
}

func (a adminService) CreateTopic(ctx context.Context, req *stratav1.CreateTopicRequest) (*stratav1.CreateTopicResponse, error) {
	if err := metadata.ValidateTopicName(req.GetName()); err != nil {
		return nil, toStatus(err)
	}
	if n := req.GetPartitions(); n <= 0 || n > a.s.cfg.MaxPartitions {
		return nil, toStatus(fmt.Errorf("%w: %d partitions, want 1 to %d", ErrInvalidPartitions, n, a.s.cfg.MaxPartitions))
	}
	if _, err := ParseTopicConfig(req.GetConfig()); err != nil {
		return nil, toStatus(err)
	}
	t, err := a.s.store.CreateTopic(ctx, metadata.Topic{Name: req.GetName(), Partitions: req.GetPartitions(), Config: req.GetConfig()})
	if err != nil {
		return nil, toStatus(err)
	}
	if fence, ok := a.s.controllerFence(); ok {
		if err := a.s.assign(ctx, fence); err != nil {
			a.s.logger.Warn("assign new topic", "topic", t.Name, "err", err)
		}
	} else {
		select {
		case a.s.assignNow <- struct{}{}:
		default:
		}
	}
	if err := a.s.ensureTopic(ctx, t); err != nil {
		a.s.logger.Warn("open new topic", "topic", t.Name, "err", err)
	}
	d, err := a.s.describe(ctx, t)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.CreateTopicResponse{Topic: d}, nil
}

func (a adminService) DeleteTopic(ctx context.Context, req *stratav1.DeleteTopicRequest) (*stratav1.DeleteTopicResponse, error) {
	if err := metadata.ValidateTopicName(req.GetName()); err != nil {
		return nil, toStatus(err)
	}
	t, err := a.s.store.DeleteTopic(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	a.s.dropTopic(t.Name, t.ID, true)
	return &stratav1.DeleteTopicResponse{}, nil
}

func (a adminService) ListTopics(ctx context.Context, _ *stratav1.ListTopicsRequest) (*stratav1.ListTopicsResponse, error) {
	ts, err := a.s.store.ListTopics(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &stratav1.ListTopicsResponse{}
	for _, t := range ts {
		resp.Topics = append(resp.Topics, &stratav1.TopicSummary{Name: t.Name, Partitions: t.Partitions})
	}
	return resp, nil
}

func (a adminService) DescribeTopic(ctx context.Context, req *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	if err := metadata.ValidateTopicName(req.GetName()); err != nil {
		return nil, toStatus(err)
	}
	t, err := a.s.store.GetTopic(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	d, err := a.s.describe(ctx, t)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.DescribeTopicResponse{Topic: d}, nil
}

func (a adminService) AlterTopicConfig(ctx context.Context, req *stratav1.AlterTopicConfigRequest) (*stratav1.AlterTopicConfigResponse, error) {
	if err := metadata.ValidateTopicName(req.GetName()); err != nil {
		return nil, toStatus(err)
	}
	t, err := a.s.store.AlterTopicConfig(ctx, req.GetName(), func(m map[string]string) (map[string]string, error) {
		if m == nil {
			m = map[string]string{}
		}
		maps.Copy(m, req.GetSet())
		for _, k := range req.GetDelete() {
			if _, ok := configKeys[k]; !ok {
				return nil, fmt.Errorf("%w: unknown key %q", ErrInvalidConfig, k)
			}
			delete(m, k)
		}
		if _, err := ParseTopicConfig(m); err != nil {
			return nil, err
		}
		return m, nil
	})
	if err != nil {
		return nil, toStatus(err)
	}
	if err := a.s.ensureTopic(ctx, t); err != nil {
		a.s.logger.Warn("apply topic config", "topic", t.Name, "err", err)
	}
	d, err := a.s.describe(ctx, t)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.AlterTopicConfigResponse{Topic: d}, nil
}

// describe builds a topic's description: the local log's offsets for the
// partitions this broker leads, etcd's state and leader for the others.
func (s *Server) describe(ctx context.Context, t metadata.Topic) (*stratav1.TopicDescription, error) {
	cfg, err := ParseTopicConfig(t.Config)
	if err != nil {
		return nil, err
	}
	d := &stratav1.TopicDescription{Name: t.Name, Id: t.ID, Config: cfg.Map()}
	local, leaders := s.leaders(ctx, t)
	for p := range t.Partitions {
		pd := &stratav1.PartitionDescription{Partition: p, LeaderId: leaders[p].BrokerID, LeaderEpoch: leaders[p].Epoch}
		if lp, ok := local[p]; ok {
			pd.LogStartOffset, pd.LogEndOffset = lp.offsets()
			if lp.remoteRead != nil {
				pd.Tier = lp.tierStatus(s.cfg.Now())
				if cfg.Compacted() {
					pd.Compaction = lp.compactionStatus()
				}
			}
		} else {
			st, err := s.store.GetPartitionState(ctx, t.Name, p)
			if err != nil {
				return nil, err
			}
			pd.LogStartOffset, pd.LogEndOffset = st.LogStartOffset, st.HighWatermark
			if cfg.Compacted() && s.cfg.Objects != nil {
				cs, _, err := s.store.GetCompactionStatus(ctx, t.Name, p)
				if err != nil {
					return nil, err
				}
				pd.Compaction = compactionProto(cs)
			}
		}
		d.Partitions = append(d.Partitions, pd)
	}
	return d, nil
}

// leaders returns the partitions of t this broker leads, and every
// partition's leader: this broker for those, etcd's leader keys (read in
// batches) for the others, broker -1 where there is none.
func (s *Server) leaders(ctx context.Context, t metadata.Topic) (map[int32]*partition, []metadata.Leader) {
	local := map[int32]*partition{}
	for _, p := range s.partitionsOf(t.Name) {
		local[p.id] = p
	}
	remote := map[int32]metadata.Leader{}
	if len(local) < int(t.Partitions) {
		var err error
		if remote, err = s.store.GetLeaders(ctx, t.Name, t.Partitions); err != nil {
			s.logger.Warn("read partition leaders", "topic", t.Name, "err", err)
		}
	}
	out := make([]metadata.Leader, t.Partitions)
	for p := range t.Partitions {
		switch l, ok := remote[p]; {
		case local[p] != nil:
			out[p] = metadata.Leader{BrokerID: s.cfg.BrokerID, Epoch: local[p].epoch}
		case ok:
			out[p] = l
		default:
			out[p] = metadata.Leader{BrokerID: -1}
		}
	}
	return local, out
}
