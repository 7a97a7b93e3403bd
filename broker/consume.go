package broker

import (
	"context"
	"fmt"
	"time"

	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// consumeService implements stratav1.ConsumeServiceServer.
type consumeService struct {
	stratav1.UnimplementedConsumeServiceServer
	s *Server
}

const (
	defaultMaxWait  = 500 * time.Millisecond
	maxMaxWait      = 30 * time.Second
	defaultMaxBytes = 1 << 20
	maxMaxBytes     = 64 << 20
)

func offsetSpec(spec *stratav1.OffsetSpec) (OffsetSpec, error) {
	switch v := spec.GetSpec().(type) {
	case *stratav1.OffsetSpec_Offset:
		if v.Offset < 0 {
			return OffsetSpec{}, fmt.Errorf("%w: negative offset %d", ErrOffsetOutOfRange, v.Offset)
		}
		return OffsetSpec{Kind: OffsetExact, Value: v.Offset}, nil
	case *stratav1.OffsetSpec_Earliest:
		return OffsetSpec{Kind: OffsetEarliest}, nil
	case *stratav1.OffsetSpec_Latest:
		return OffsetSpec{Kind: OffsetLatest}, nil
	case *stratav1.OffsetSpec_TimestampMs:
		return OffsetSpec{Kind: OffsetTimestamp, Value: v.TimestampMs}, nil
	case nil:
		return OffsetSpec{}, fmt.Errorf("%w: no start position", ErrInvalidRequest)
	}
	return OffsetSpec{}, fmt.Errorf("%w: unknown start position", ErrInvalidRequest)
}

// Consume streams batches until the client goes away or an error occurs.
func (cs consumeService) Consume(req *stratav1.ConsumeRequest, stream stratav1.ConsumeService_ConsumeServer) error {
	s := cs.s
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	maxWait := time.Duration(req.GetMaxWaitMs()) * time.Millisecond
	if maxWait <= 0 {
		maxWait = defaultMaxWait
	}
	maxWait = min(maxWait, maxMaxWait)
	maxBytes := int(req.GetMaxBytes())
	if maxBytes <= 0 {
		maxBytes = defaultMaxBytes
	}
	maxBytes = min(maxBytes, maxMaxBytes)
	minBytes := max(int(req.GetMinBytes()), 1)
	if req.GetMaxBytes() < 0 || req.GetMinBytes() < 0 {
		return toStatus(fmt.Errorf("%w: negative byte limits", ErrInvalidRequest))
	}
	part, err := s.partition(req.GetTopic(), req.GetPartition())
	if err != nil {
		return toStatus(err)
	}
	spec, err := offsetSpec(req.GetStart())
	if err != nil {
		return toStatus(err)
	}
	next, err := part.resolveOffset(spec)
	if err != nil {
		return toStatus(err)
	}
	for {
		start := s.cfg.Now()
		res, err := part.fetch(ctx, next, minBytes, maxBytes, start.Add(maxWait), s.cfg.Now)
		if err != nil {
			if stream.Context().Err() != nil {
				return nil
			}
			if ctx.Err() != nil {
				return toStatus(fmt.Errorf("%w: broker shutting down", ErrUnavailable))
			}
			return toStatus(err)
		}
		logStart, _ := part.offsets()
		if s.metrics != nil {
			s.metrics.fetchRequests.Inc()
			s.metrics.fetchLatency.Observe(s.cfg.Now().Sub(start).Seconds())
			s.metrics.bytesOut.WithLabelValues(part.topic).Add(float64(len(res.Batches)))
		}
		if err := stream.Send(&stratav1.ConsumeResponse{
			Records:        res.Batches,
			NextOffset:     res.Next,
			HighWatermark:  res.End,
			LogStartOffset: logStart,
		}); err != nil {
			return nil
		}
		next = res.Next
	}
}

func (cs consumeService) ListOffsets(ctx context.Context, req *stratav1.ListOffsetsRequest) (*stratav1.ListOffsetsResponse, error) {
	if len(req.GetPartitions()) == 0 {
		return nil, toStatus(fmt.Errorf("%w: no partitions", ErrInvalidRequest))
	}
	resp := &stratav1.ListOffsetsResponse{}
	for _, lp := range req.GetPartitions() {
		r := &stratav1.ListOffsetsResult{Topic: lp.GetTopic(), Partition: lp.GetPartition(), Offset: -1}
		resp.Partitions = append(resp.Partitions, r)
		part, err := cs.s.partition(lp.GetTopic(), lp.GetPartition())
		if err == nil {
			var spec OffsetSpec
			if spec, err = offsetSpec(lp.GetSpec()); err == nil {
				r.Offset, err = part.resolveOffset(spec)
				r.LogStartOffset, r.HighWatermark = part.offsets()
			}
		}
		if err != nil {
			r.Error = errorProto(err)
		}
	}
	return resp, nil
}
