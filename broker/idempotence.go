package broker

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering"
)

// ErrOutOfOrderSequence is returned for a batch of an idempotent producer
// whose first sequence does not follow the last one written: an earlier
// batch is missing (it failed and will be retried). Nothing is written;
// the producer retries.
var ErrOutOfOrderSequence = errors.New("broker: out-of-order sequence")

// ErrUnknownProducer is returned for a batch of a producer id the
// partition does not know that does not start at sequence 0: the producer
// renumbers its batches under a new id.
var ErrUnknownProducer = errors.New("broker: unknown producer id")

// ErrSequenceTooOld is returned for a batch whose sequences come before the
// producer's last written one without being one of its recent batches.
var ErrSequenceTooOld = errors.New("broker: sequence too old")

// recentBatches is how many batches per producer a partition remembers to
// recognise retries (Kafka keeps 5).
const recentBatches = 5

// producerState is what a partition remembers of an idempotent producer.
type producerState struct {
	epoch   int16
	lastSeq int32
	recent  []seqRange // oldest first, at most recentBatches
}

// seqRange is a written batch: its sequences and offsets.
type seqRange struct {
	firstSeq, lastSeq int32
	base, last        int64
}

func (st *producerState) find(first, last int32) (seqRange, bool) {
	for _, r := range st.recent {
		if r.firstSeq == first && r.lastSeq == last {
			return r, true
		}
	}
	return seqRange{}, false
}

func (st *producerState) record(r seqRange) {
	st.lastSeq = r.lastSeq
	st.recent = append(st.recent, r)
	if len(st.recent) > recentBatches {
		st.recent = st.recent[1:]
	}
}

// idempotentCheck decides what to do with batch h of an idempotent
// producer given the state before it: write it (ok), or answer with the
// offsets of the identical batch already written (dup), or refuse it.
func idempotentCheck(st *producerState, h segment.BatchHeader) (dup *seqRange, err error) {
	first := h.FirstSequence
	last := first + h.LastOffsetDelta
	if st == nil || h.ProducerEpoch > st.epoch {
		// A producer (or epoch) this partition does not know: it must
		// start at sequence 0, or batches of it written before (and
		// forgotten, e.g. by another leader) could be written again.
		if first != 0 {
			return nil, fmt.Errorf("%w: producer %d at sequence %d", ErrUnknownProducer, h.ProducerID, first)
		}
		return nil, nil
	}
	if h.ProducerEpoch < st.epoch {
		return nil, fmt.Errorf("%w: producer %d epoch %d is fenced by epoch %d", ErrInvalidRequest, h.ProducerID, h.ProducerEpoch, st.epoch)
	}
	if r, ok := st.find(first, last); ok {
		return &r, nil
	}
	if first == st.lastSeq+1 {
		return nil, nil
	}
	if first <= st.lastSeq {
		// Before the last written sequence but not a batch remembered: a
		// duplicate of something older, or a batch overtaken by later ones.
		// Its records may or may not be in the log: refuse it rather than
		// acknowledge what might not be there.
		return nil, fmt.Errorf("%w: producer %d sequence %d is at or before the last written (%d) and not a recent batch", ErrSequenceTooOld, h.ProducerID, first, st.lastSeq)
	}
	return nil, fmt.Errorf("%w: producer %d expected sequence %d, got %d", ErrOutOfOrderSequence, h.ProducerID, st.lastSeq+1, first)
}

// clone copies a state (nil stays nil).
func (st *producerState) clone() *producerState {
	if st == nil {
		return nil
	}
	cp := *st
	cp.recent = slices.Clone(st.recent)
	return &cp
}

// recordBatch updates states with batch h of an idempotent producer,
// written at base (a new epoch starts a new state).
func recordBatch(states map[int64]*producerState, h segment.BatchHeader, base int64) {
	st := states[h.ProducerID]
	if st == nil || h.ProducerEpoch > st.epoch {
		st = &producerState{epoch: h.ProducerEpoch}
		states[h.ProducerID] = st
	}
	st.record(seqRange{firstSeq: h.FirstSequence, lastSeq: h.FirstSequence + h.LastOffsetDelta, base: base, last: base + int64(h.LastOffsetDelta)})
}

// observe updates the producers' state with a batch written at base.
func (p *partition) observe(h segment.BatchHeader, base int64) {
	if h.ProducerID < 0 {
		return
	}
	if p.producers == nil {
		p.producers = map[int64]*producerState{}
	}
	recordBatch(p.producers, h, base)
}

// rebuildProducers recovers the producers' state: from base (the state
// as of offset from, read from the last uploaded segment's producer
// snapshot) and the local batches at or after from; without a base, from
// the last two local segments (retries come within seconds, so that
// covers them).
func (p *partition) rebuildProducers(base map[int64]*producerState, from int64) error {
	p.prodMu.Lock()
	defer p.prodMu.Unlock()
	p.producers = cloneStates(base)
	segs := p.log.Segments()
	if len(segs) == 0 {
		return nil
	}
	localStart, end := p.log.Offsets()
	if base == nil {
		from = segs[max(0, len(segs)-2)].BaseOffset
	}
	from = max(from, localStart)
	floor := from
	for from < end {
		res, err := p.log.Read(from, 8<<20)
		if err != nil {
			return err
		}
		if len(res.Batches) == 0 {
			break
		}
		err = segment.ForEachBatch(res.Batches, func(h segment.BatchHeader, _ []byte) error {
			if h.BaseOffset >= floor {
				p.observe(h, h.BaseOffset)
			}
			return nil
		})
		if err != nil {
			return err
		}
		from = res.Next
	}
	return nil
}

// cloneStates deep-copies producer states.
func cloneStates(m map[int64]*producerState) map[int64]*producerState {
	out := make(map[int64]*producerState, len(m))
	for id, st := range m {
		out[id] = st.clone()
	}
	return out
}

// maxSnapshotProducers bounds a producer snapshot: the producers whose
// last batch is the most recent are kept.
const maxSnapshotProducers = 10000

// producerSnapshot renders states as of offset end.
func producerSnapshot(states map[int64]*producerState, end int64) tiering.ProducerSnapshot {
	snap := tiering.ProducerSnapshot{End: end}
	for id, st := range states {
		ps := tiering.ProducerState{ID: id, Epoch: st.epoch, LastSeq: st.lastSeq}
		for _, r := range st.recent {
			ps.Recent = append(ps.Recent, tiering.ProducerBatch{FirstSeq: r.firstSeq, LastSeq: r.lastSeq, Base: r.base, Last: r.last})
		}
		snap.Producers = append(snap.Producers, ps)
	}
	sort.Slice(snap.Producers, func(i, j int) bool {
		a, b := snap.Producers[i].Recent, snap.Producers[j].Recent
		return a[len(a)-1].Last > b[len(b)-1].Last
	})
	if len(snap.Producers) > maxSnapshotProducers {
		snap.Producers = snap.Producers[:maxSnapshotProducers]
	}
	return snap
}

// statesFromSnapshot is the inverse of producerSnapshot.
func statesFromSnapshot(snap tiering.ProducerSnapshot) map[int64]*producerState {
	out := make(map[int64]*producerState, len(snap.Producers))
	for _, ps := range snap.Producers {
		st := &producerState{epoch: ps.Epoch, lastSeq: ps.LastSeq}
		for _, r := range ps.Recent {
			st.recent = append(st.recent, seqRange{firstSeq: r.FirstSeq, lastSeq: r.LastSeq, base: r.Base, last: r.Last})
		}
		out[ps.ID] = st
	}
	return out
}
