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
		_, leaders := s.leaders(ctx, t)
		for p, l := range leaders {
			tm.Partitions = append(tm.Partitions, &stratav1.PartitionMetadata{Partition: int32(p), LeaderId: l.BrokerID, LeaderEpoch: l.Epoch})
		}
		resp.Topics = append(resp.Topics, tm)
	}
	return resp, nil
}
