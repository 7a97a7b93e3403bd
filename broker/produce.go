package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// produceService implements stratav1.ProduceServiceServer.
type produceService struct {
	stratav1.UnimplementedProduceServiceServer
	s *Server
}

// pendingProduce is a request whose batches are written and whose
// acknowledgement waits for durability.
type pendingProduce struct {
	resp    *stratav1.ProduceResponse
	waits   []pendingWait
	acks    Acks
	timeout time.Duration
	start   time.Time // on the broker's clock (metrics)
	// arrived is when the request arrived (wall clock): its timeout runs
	// from here, not from when its acknowledgement wait begins behind
	// earlier requests of the stream.
	arrived time.Time
}

type pendingWait struct {
	result *stratav1.PartitionResult
	part   *partition
	next   int64
	// then, when set, is the partition's answer once the wait succeeds
	// (instead of the offsets).
	then error
}

func (ps produceService) Produce(ctx context.Context, req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
	p, err := ps.s.appendRequest(req)
	if err != nil {
		return nil, toStatus(err)
	}
	return ps.s.finishProduce(ctx, p), nil
}

// ProduceStream appends each request as it arrives and acknowledges them
// in order from a second goroutine, so appends of request n+1 overlap the
// fsync of request n.
func (ps produceService) ProduceStream(stream stratav1.ProduceService_ProduceStreamServer) error {
	ctx := stream.Context()
	pending := make(chan *pendingProduce, 256)
	sendErr := make(chan error, 1)
	go func() {
		for p := range pending {
			if err := stream.Send(ps.s.finishProduce(ctx, p)); err != nil {
				sendErr <- err
				for range pending {
				}
				return
			}
		}
		sendErr <- nil
	}()
	// Recv runs in its own goroutine so that a shutdown can end the stream
	// between requests; it ends when the handler returns. Requests are
	// decoded in place (pooledProduceRequest) and released once appended.
	type recvd struct {
		req *pooledProduceRequest
		err error
	}
	reqs := make(chan recvd)
	go func() {
		for {
			req := &pooledProduceRequest{}
			err := stream.RecvMsg(req)
			select {
			case reqs <- recvd{req, err}:
			case <-ctx.Done():
				req.release()
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var endErr error
loop:
	for {
		var r recvd
		select {
		case r = <-reqs:
		case <-ctx.Done():
			break loop
		case <-ps.s.stopping:
			endErr = toStatus(fmt.Errorf("%w: broker shutting down", ErrUnavailable))
			break loop
		}
		if r.err != nil {
			r.req.release()
			if !errors.Is(r.err, io.EOF) && status.Code(r.err) != codes.Canceled {
				endErr = r.err
			}
			break
		}
		p, err := ps.s.appendRequest(&r.req.req)
		r.req.release()
		if err != nil {
			endErr = toStatus(err)
			break
		}
		select {
		case pending <- p:
		case err := <-sendErr:
			// The sender failed and drains pending itself.
			close(pending)
			return err
		}
	}
	// Every appended request is acknowledged before the stream ends.
	close(pending)
	if err := <-sendErr; err != nil {
		return err
	}
	return endErr
}

// appendRequest validates a request and writes every partition's batches.
// A request-level problem returns an error; a partition-level one is
// recorded in that partition's result, and that partition writes nothing.
func (s *Server) appendRequest(req *stratav1.ProduceRequest) (*pendingProduce, error) {
	start := s.cfg.Now()
	if len(req.GetPartitions()) == 0 {
		return nil, fmt.Errorf("%w: produce request with no partitions", ErrInvalidRequest)
	}
	// Request-level checks come before any partition is written.
	if _, err := resolveAcks(req.GetAcks(), "all"); err != nil {
		return nil, err
	}
	p := &pendingProduce{
		resp:    &stratav1.ProduceResponse{RequestId: req.GetRequestId()},
		timeout: time.Duration(req.GetTimeoutMs()) * time.Millisecond,
		start:   start,
		arrived: time.Now(),
	}
	if p.timeout <= 0 {
		p.timeout = 30 * time.Second
	}
	for _, pr := range req.GetPartitions() {
		res := &stratav1.PartitionResult{Topic: pr.GetTopic(), Partition: pr.GetPartition(), BaseOffset: -1, LastOffset: -1}
		p.resp.Partitions = append(p.resp.Partitions, res)
		part, err := s.partition(pr.GetTopic(), pr.GetPartition())
		if err == nil {
			err = s.checkDiskLimit()
		}
		if err != nil {
			res.Error = errorProto(err)
			continue
		}
		cfg := part.config.Load()
		acks, err := resolveAcks(req.GetAcks(), cfg.Acks)
		if err != nil {
			return nil, err
		}
		p.acks = max(p.acks, acks)
		batches, err := splitBatches(pr.GetRecords(), cfg.MaxMessageBytes)
		if err != nil {
			res.Error = errorProto(err)
			continue
		}
		ar, err := part.append(batches)
		if errors.Is(err, ErrSequenceTooOld) {
			// A retry of a batch written before the last one the producer
			// wrote: it is in the log, somewhere below its written end.
			// Say so (the client takes it as written) only once all that
			// is as durable as the request asks - not before its commit.
			p.acks = max(p.acks, acks)
			p.waits = append(p.waits, pendingWait{result: res, part: part, next: part.log.WrittenOffset(), then: err})
			continue
		}
		if err != nil {
			res.Error = errorProto(err)
			continue
		}
		res.BaseOffset, res.LastOffset = ar.base, ar.last
		s.kickWAL(len(pr.GetRecords()))
		if s.metrics != nil {
			s.metrics.bytesIn.WithLabelValues(part.topic).Add(float64(len(pr.GetRecords())))
		}
		p.waits = append(p.waits, pendingWait{result: res, part: part, next: ar.last + 1})
	}
	return p, nil
}

func resolveAcks(a stratav1.Acks, topicDefault string) (Acks, error) {
	switch a {
	case stratav1.Acks_ACKS_NONE:
		return AcksNone, nil
	case stratav1.Acks_ACKS_LEADER:
		return AcksLeader, nil
	case stratav1.Acks_ACKS_ALL:
		return AcksAll, nil
	case stratav1.Acks_ACKS_UNSPECIFIED:
		return ParseAcks(topicDefault)
	}
	return 0, fmt.Errorf("%w: unknown acks %d", ErrInvalidRequest, a)
}

// finishProduce waits for the durability the request asked for and
// returns its response. A partition whose wait fails reports the error:
// its records were written but are not acknowledged.
func (s *Server) finishProduce(ctx context.Context, p *pendingProduce) *stratav1.ProduceResponse {
	ctx, cancel := context.WithDeadline(ctx, p.arrived.Add(p.timeout))
	defer cancel()
	for _, w := range p.waits {
		err := w.part.waitAcks(ctx, p.acks, w.next)
		if err == nil && p.acks != AcksNone && !s.leaseValid() {
			// Written, maybe durable, but this broker may have lost its
			// leadership meanwhile: it must not acknowledge as leader.
			err = fmt.Errorf("%w: the etcd session lease of broker %d may have expired; not acknowledging", ErrUnavailable, s.cfg.BrokerID)
		}
		if err == nil {
			err = w.then
		}
		if err != nil {
			w.result.Error = errorProto(err)
		}
	}
	if s.metrics != nil {
		code := "ok"
		for _, r := range p.resp.Partitions {
			if r.Error != nil {
				code = codes.Code(r.Error.Code).String()
				break
			}
		}
		s.metrics.produceRequests.WithLabelValues(code).Inc()
		s.metrics.produceLatency.WithLabelValues(p.acks.String()).Observe(s.cfg.Now().Sub(p.start).Seconds())
	}
	return p.resp
}

// errorProto is the per-partition form of toStatus.
func errorProto(err error) *stratav1.Error {
	st, _ := status.FromError(toStatus(err))
	e := &stratav1.Error{Code: int32(st.Code()), Message: st.Message()}
	var nl *NotLeaderError
	if errors.As(err, &nl) && nl.LeaderID >= 0 {
		e.Leader = &stratav1.LeaderHint{BrokerId: nl.LeaderID, Address: nl.LeaderAddress, Epoch: nl.LeaderEpoch}
	}
	return e
}
