package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// defaultSessionTimeout is assumed until the coordinator says otherwise.
const defaultSessionTimeout = 10 * time.Second

// membership runs the consumer's sessions with the group's coordinator
// until Close: it joins (again, after a broken stream), heartbeats,
// queues assignments for Poll and sends Poll's acknowledgements.
//
// The consumer stops consuming its partitions (OnLost) when it is fenced
// (the coordinator removed it), and also when no heartbeat was
// acknowledged for a session timeout, counted from the heartbeat's send:
// by then the coordinator may have given them to another member, so
// neither consumes a partition at the same time as another.
func (g *GroupConsumer) membership() {
	defer close(g.loopDone)
	var lastAck time.Time
	session := g.cfg.SessionTimeout
	if session <= 0 {
		session = defaultSessionTimeout
	}
	failures := 0
	for {
		select {
		case <-g.closing:
			return
		default:
		}
		err := g.runStream(&lastAck, &session, &failures)
		if err == nil {
			return // left the group
		}
		select {
		case <-g.closing:
			return
		default:
		}
		if errors.Is(err, ErrNoBroker) {
			err = status.Error(codes.Unavailable, err.Error())
		}
		switch code := status.Code(err); {
		case errors.Is(err, ErrClosed) || g.c.isClosed():
			g.lose("client closed")
			g.fail(ErrClosed)
			return
		case code == codes.FailedPrecondition:
			g.c.logger.Warn("group member fenced; rejoining as a new member", "group", g.cfg.Group, "err", status.Convert(err).Message())
			g.lose("fenced")
			g.mu.Lock()
			g.mu.memberID, g.mu.generation = "", 0
			g.mu.Unlock()
			lastAck, failures = time.Time{}, 0
			continue
		case code == codes.InvalidArgument || code == codes.NotFound || code == codes.Unimplemented || code == codes.PermissionDenied ||
			code == codes.ResourceExhausted:
			g.lose("membership failed")
			g.fail(fmt.Errorf("client: group %s: %w", g.cfg.Group, err))
			return
		}
		failures++
		if g.holding() && !lastAck.IsZero() && time.Since(lastAck) >= session {
			g.lose("no heartbeat acknowledged within the session timeout")
			lastAck = time.Time{}
		}
		// At most ~0.5 s apart: a coordinator's broker that died is
		// replaced about a session TTL later, and the member should find
		// the new one well within its session timeout.
		t := time.NewTimer(backoff(50*time.Millisecond, min(failures, 4)))
		select {
		case <-t.C:
		case <-g.closing:
			t.Stop()
			return
		}
	}
}

func (g *GroupConsumer) holding() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.mu.owned) > 0
}

// lose stops consuming every owned partition at once and tells Poll
// (OnLost); events of the membership so far become stale.
func (g *GroupConsumer) lose(reason string) {
	g.mu.Lock()
	parts := sortedTPs(slices.Collect(maps.Keys(g.mu.owned)))
	for _, op := range g.mu.owned {
		op.cancel()
	}
	g.mu.owned = map[TopicPartition]*ownedPartition{}
	g.mu.session++
	g.mu.Unlock()
	if len(parts) > 0 {
		g.c.logger.Warn("group partitions lost", "group", g.cfg.Group, "reason", reason, "partitions", fmt.Sprint(parts))
		g.events.push(groupEvent{lost: parts})
	}
}

// fail ends the consumer with err: every later Poll returns it.
func (g *GroupConsumer) fail(err error) {
	g.mu.Lock()
	if g.mu.fatal == nil {
		g.mu.fatal = err
	}
	g.mu.Unlock()
	g.events.push(groupEvent{err: err})
}

func toProtoTPs(tps []TopicPartition) []*stratav1.TopicPartitions {
	var out []*stratav1.TopicPartitions
	for _, tp := range sortedTPs(tps) {
		if n := len(out); n == 0 || out[n-1].Topic != tp.Topic {
			out = append(out, &stratav1.TopicPartitions{Topic: tp.Topic})
		}
		out[len(out)-1].Partitions = append(out[len(out)-1].Partitions, tp.Partition)
	}
	return out
}

// setupContext bounds finding the coordinator and opening a stream: 10 s,
// until Close, and - while the consumer owns partitions - until its
// session runs out (no heartbeat acknowledged for the session timeout), so
// that a broker that does not answer cannot keep the consumer consuming
// past it: the caller then gives the partitions up.
func (g *GroupConsumer) setupContext(ctx context.Context, lastAck time.Time, session time.Duration) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(10 * time.Second)
	if !lastAck.IsZero() && g.holding() && lastAck.Add(session).Before(deadline) {
		deadline = lastAck.Add(session)
	}
	setup, cancel := context.WithDeadline(ctx, deadline)
	go func() {
		select {
		case <-g.closing:
			cancel()
		case <-setup.Done():
		}
	}()
	return setup, cancel
}

// runStream is one Join stream with the coordinator: it returns nil after
// leaving (Close), or the error that ended the stream.
func (g *GroupConsumer) runStream(lastAck *time.Time, session *time.Duration, failures *int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	setup, setupCancel := g.setupContext(ctx, *lastAck, *session)
	defer setupCancel()
	if _, known := g.c.hashedBroker(g.cfg.Group); !known {
		// Learn the brokers, so that FindCoordinator spreads groups.
		_, _ = g.c.Metadata(setup)
	}
	_, addr, err := g.c.FindCoordinator(setup, g.cfg.Group)
	if err != nil {
		return err
	}
	cc, err := g.c.conn(addr)
	if err != nil {
		return err
	}
	// A stream not open (its JoinGroup sent) when the setup ends is
	// abandoned.
	abandon := context.AfterFunc(setup, cancel)
	stream, err := stratav1.NewGroupServiceClient(cc).Join(ctx)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.mu.session++
	sess := g.mu.session
	owned := slices.Collect(maps.Keys(g.mu.owned))
	join := &stratav1.JoinGroup{
		Group: g.cfg.Group, MemberId: g.mu.memberID, Generation: g.mu.generation, Owned: toProtoTPs(owned),
		Topics: g.cfg.Topics, Assignor: g.cfg.Assignor, ClientId: g.cfg.ClientID,
		SessionTimeoutMs:   uint32(g.cfg.SessionTimeout / time.Millisecond),
		RebalanceTimeoutMs: uint32(g.cfg.RebalanceTimeout / time.Millisecond),
	}
	g.mu.coordinator = addr
	g.mu.Unlock()
	// Acknowledgements of an earlier stream are stale.
	for drained := false; !drained; {
		select {
		case <-g.acks:
		default:
			drained = true
		}
	}
	joinSent := time.Now()
	if err := stream.Send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Join{Join: join}}); err != nil {
		_, err = stream.Recv()
		return err
	}
	if !abandon() {
		return status.Error(codes.Unavailable, "client: the group's coordinator did not answer in time")
	}
	setupCancel()
	msgs := make(chan *stratav1.JoinResponse, 16)
	recvErr := make(chan error, 1)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case msgs <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	// send returns the stream's error when a send fails.
	send := func(r *stratav1.JoinRequest) error {
		if err := stream.Send(r); err != nil {
			select {
			case err := <-recvErr:
				return err
			case <-time.After(5 * time.Second):
				return status.Error(codes.Unavailable, "client: group stream broken")
			}
		}
		return nil
	}
	hb := time.NewTicker(time.Hour)
	defer hb.Stop()
	deadline := time.NewTimer(time.Hour)
	defer deadline.Stop()
	var sent []time.Time // heartbeats awaiting their acknowledgement
	joined := false
	for {
		deadline.Reset(time.Hour)
		if !lastAck.IsZero() && g.holding() {
			deadline.Reset(max(time.Until(lastAck.Add(*session)), time.Millisecond))
		}
		select {
		case <-g.closing:
			if joined {
				_ = stream.Send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Leave{Leave: &stratav1.LeaveGroup{}}})
				_ = stream.CloseSend()
				select {
				case err := <-recvErr:
					g.c.logger.Debug("left group", "group", g.cfg.Group, "stream", err)
				case <-time.After(2 * time.Second):
				}
			}
			return nil
		case err := <-recvErr:
			if status.Code(err) == codes.OK {
				err = status.Error(codes.Unavailable, "client: the coordinator ended the group stream")
			}
			return err
		case r := <-msgs:
			switch x := r.GetResponse().(type) {
			case *stratav1.JoinResponse_Joined:
				j := x.Joined
				joined, *failures = true, 0
				*lastAck = joinSent
				if j.GetSessionTimeoutMs() > 0 {
					*session = time.Duration(j.GetSessionTimeoutMs()) * time.Millisecond
				}
				hb.Reset(max(time.Duration(j.GetHeartbeatIntervalMs())*time.Millisecond, 50*time.Millisecond))
				g.mu.Lock()
				g.mu.memberID, g.mu.generation = j.GetMemberId(), j.GetGeneration()
				g.mu.Unlock()
			case *stratav1.JoinResponse_HeartbeatAck:
				if len(sent) > 0 {
					*lastAck, sent = sent[0], sent[1:]
				}
			case *stratav1.JoinResponse_Assignment:
				g.events.push(groupEvent{session: sess, assignment: x.Assignment})
			}
		case <-hb.C:
			sent = append(sent, time.Now())
			if err := send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Heartbeat{Heartbeat: &stratav1.GroupHeartbeat{}}}); err != nil {
				return err
			}
		case a := <-g.acks:
			if a.session != sess {
				continue
			}
			if err := send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Ack{Ack: &stratav1.AssignmentAck{Epoch: a.epoch, Owned: toProtoTPs(a.owned)}}}); err != nil {
				return err
			}
		case <-deadline.C:
			if !lastAck.IsZero() && g.holding() && time.Since(*lastAck) >= *session {
				g.lose("no heartbeat acknowledged within the session timeout")
				*lastAck = time.Time{}
				return status.Error(codes.Unavailable, "client: no heartbeat acknowledged within the session timeout")
			}
		}
	}
}
