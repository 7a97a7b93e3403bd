package broker

import (
	"context"

	"github.com/strata-stream/strata/metadata"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// metadataService implements stratav1.MetadataServiceServer.
type metadataService struct {
	stratav1.UnimplementedMetadataServiceServer
	s *Server
}

func (m metadataService) GetMetadata(ctx context.Context, req *stratav1.GetMetadataRequest) (*stratav1.GetMetadataResponse, error) {
	s := m.s
	brokers, err := s.store.ListBrokers(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &stratav1.GetMetadataResponse{ClusterId: s.store.Prefix(), ControllerId: -1}
	if id, err := s.store.ControllerID(ctx); err == nil {
		resp.ControllerId = id
	}
	for _, b := range brokers {
		resp.Brokers = append(resp.Brokers, &stratav1.BrokerInfo{Id: b.ID, Address: b.Address, Rack: b.Rack})
	}
	var topics []metadata.Topic
	if len(req.GetTopics()) == 0 {
		if topics, err = s.store.ListTopics(ctx); err != nil {
			return nil, toStatus(err)
		}
	} else {
		for _, name := range req.GetTopics() {
			if err := metadata.ValidateTopicName(name); err != nil {
				return nil, toStatus(err)
			}
			t, err := s.store.GetTopic(ctx, name)
			if err != nil {
				return nil, toStatus(err)
			}
			topics = append(topics, t)
		}
	}
	for _, t := range topics {
		tm := &stratav1.TopicMetadata{Name: t.Name}
		local := map[int32]*partition{}
		for _, p := range s.partitionsOf(t.Name) {
			local[p.id] = p
		}
		for p := range t.Partitions {
			pm := &stratav1.PartitionMetadata{Partition: p, LeaderId: -1}
			if lp, ok := local[p]; ok {
				pm.LeaderId, pm.LeaderEpoch = s.cfg.BrokerID, lp.epoch
			} else if l, ok, err := s.store.GetLeader(ctx, t.Name, p); err == nil && ok {
				pm.LeaderId, pm.LeaderEpoch = l.BrokerID, l.Epoch
			}
			tm.Partitions = append(tm.Partitions, pm)
		}
		resp.Topics = append(resp.Topics, tm)
	}
	return resp, nil
}
