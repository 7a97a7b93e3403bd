package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-stream/strata/metadata"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/tiering/objstore"
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
	spec, err := offsetSpec(req.GetStart())
	if err != nil {
		return toStatus(err)
	}
	part, err := s.partition(req.GetTopic(), req.GetPartition())
	if errors.Is(err, ErrNotLeader) && s.reader != nil {
		// Not the leader: records already in the bucket are served from
		// it here all the same; the rest is the leader's.
		return s.consumeRemote(ctx, req, spec, maxBytes, err, stream)
	}
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

// consumeRemote serves a partition this broker does not lead from its
// uploaded segments (any broker can: the manifest is in etcd, the objects
// in the bucket), from an exact offset or the earliest one, until the
// uploaded end; there, or for any other start, it ends the stream with
// notLeader, the error that sends the client to the leader.
func (s *Server) consumeRemote(ctx context.Context, req *stratav1.ConsumeRequest, spec OffsetSpec, maxBytes int, notLeader error, stream stratav1.ConsumeService_ConsumeServer) error {
	topic, p := req.GetTopic(), req.GetPartition()
	// The manifest, and the log start (retention may have left it above
	// the first entry's base, compaction below).
	manifest := func() ([]metadata.SegmentEntry, int64, error) {
		st, err := s.store.GetPartitionState(ctx, topic, p)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		es, err := s.store.ListSegments(ctx, topic, p)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return es, st.LogStartOffset, nil
	}
	entries, logStart, err := manifest()
	if err != nil {
		return toStatus(err)
	}
	belowStart := func(o int64) error {
		return toStatus(fmt.Errorf("%w: offset %d of %s/%d is below the log start %d", ErrOffsetOutOfRange, o, topic, p, logStart))
	}
	var next int64
	switch {
	case len(entries) == 0:
		return toStatus(notLeader)
	case spec.Kind == OffsetEarliest:
		next = entries[0].BaseOffset
	case spec.Kind == OffsetExact && spec.Value >= min(logStart, entries[0].BaseOffset):
		next = spec.Value
	case spec.Kind == OffsetExact:
		return belowStart(spec.Value)
	default:
		return toStatus(notLeader)
	}
	relisted := false
	for range 100000 { // bounded: each turn sends or ends
		e, ok := entryFrom(entries, next)
		if !ok {
			// Beyond what this broker knew was uploaded: look again once.
			if entries, err = s.store.ListSegments(ctx, topic, p); err != nil {
				return toStatus(fmt.Errorf("%w: %v", ErrUnavailable, err))
			}
			if e, ok = entryFrom(entries, next); !ok {
				return toStatus(notLeader)
			}
		}
		// After a gap in the manifest (records lost before upload), the
		// next stored offset.
		next = max(next, e.BaseOffset)
		b, n, err := s.reader.Read(ctx, e, next, maxBytes)
		if errors.Is(err, objstore.ErrNotExist) && !relisted {
			// Replaced by compaction, or expired by retention, longer
			// than the grace period ago: the manifest moved on.
			if entries, logStart, err = manifest(); err != nil {
				return toStatus(err)
			}
			if relisted = true; next < logStart {
				return belowStart(next)
			}
			continue
		}
		relisted = false
		if err != nil {
			if ctx.Err() != nil {
				return toStatus(fmt.Errorf("%w: the stream ended (client gone or broker shutting down)", ErrUnavailable))
			}
			return toStatus(remoteReadError(topic, p, e, err))
		}
		if s.metrics != nil {
			s.metrics.fetchRequests.Inc()
			s.metrics.bytesOut.WithLabelValues(topic).Add(float64(len(b)))
			s.metrics.remoteReadBytes.WithLabelValues(topic).Add(float64(len(b)))
		}
		if err := stream.Send(&stratav1.ConsumeResponse{
			Records:        b,
			NextOffset:     n,
			HighWatermark:  entries[len(entries)-1].LastOffset + 1,
			LogStartOffset: entries[0].BaseOffset,
		}); err != nil {
			return err // the client went away
		}
		next = n
	}
	return nil
}
