package broker

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/strata-stream/strata/metadata"
)

// runController campaigns for the controller role on the broker's session
// and, once elected, assigns partitions until ctx ends or the session
// does. One broker of the cluster is the controller at a time; its writes
// are fenced by its election key, so a deposed controller writes nothing.
func (s *Server) runController(ctx context.Context, sess *concurrency.Session) error {
	e := concurrency.NewElection(sess, s.store.ControllerPrefix())
	for {
		err := e.Campaign(ctx, strconv.Itoa(int(s.cfg.BrokerID)))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		s.logger.Warn("controller campaign", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-sess.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	fence := metadata.ControllerFence{Key: e.Key(), Rev: e.Rev()}
	s.mu.Lock()
	s.mu.controller = &fence
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.mu.controller = nil
		s.mu.Unlock()
	}()
	s.logger.Info("elected controller")
	t := time.NewTicker(s.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		if err := s.assign(ctx, fence); err != nil && ctx.Err() == nil {
			s.logger.Warn("controller: assign partitions", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sess.Done():
			return nil
		case <-t.C:
		case <-s.assignNow:
		}
	}
}

// controllerFence returns the fence when this broker is the controller.
func (s *Server) controllerFence() (metadata.ControllerFence, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.mu.controller == nil {
		return metadata.ControllerFence{}, false
	}
	return *s.mu.controller, true
}

// assign gives every partition without a live assigned broker to the live
// broker with the fewest partitions (ties: the lowest id). Partitions of
// live brokers never move: without the WAL, moving a partition would
// strand the tail not yet uploaded on the old broker's disk.
func (s *Server) assign(ctx context.Context, fence metadata.ControllerFence) error {
	// One pass at a time: passes working from different snapshots could
	// move a partition a live broker just took.
	s.assignMu.Lock()
	defer s.assignMu.Unlock()
	topics, err := s.store.ListTopics(ctx)
	if err != nil {
		return err
	}
	brokers, err := s.store.ListBrokers(ctx)
	if err != nil {
		return err
	}
	if len(brokers) == 0 {
		return nil
	}
	assigned, err := s.store.ListAssignments(ctx)
	if err != nil {
		return err
	}
	load := map[int32]int{}
	for _, b := range brokers {
		load[b.ID] = 0
	}
	for _, ps := range assigned {
		for _, b := range ps {
			if _, live := load[b]; live {
				load[b]++
			}
		}
	}
	ids := make([]int32, 0, len(load))
	for id := range load {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	sort.Slice(topics, func(i, j int) bool { return topics[i].Name < topics[j].Name })
	changed := false
	for _, t := range topics {
		changes := map[int32]int32{}
		for p := range t.Partitions {
			if b, ok := assigned[t.Name][p]; ok {
				if _, live := load[b]; live {
					continue
				}
			}
			pick := ids[0]
			for _, id := range ids[1:] {
				if load[id] < load[pick] {
					pick = id
				}
			}
			load[pick]++
			changes[p] = pick
		}
		if len(changes) > 0 {
			if err := s.store.SetAssignments(ctx, fence, t.Name, changes); err != nil {
				return err
			}
			changed = true
			s.logger.Info("controller: assigned partitions", "topic", t.Name, "assignments", fmt.Sprint(changes))
		}
	}
	if changed {
		select {
		case s.reconcileNow <- struct{}{}:
		default:
		}
	}
	return nil
}
