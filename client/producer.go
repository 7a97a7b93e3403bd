package client

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/internal/rpcbuf"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
)

// ErrProducerClosed is returned by Produce after Close.
var ErrProducerClosed = errors.New("client: producer closed")

// ErrInDoubt fails the records of an idempotent producer's batch that may
// or may not have been written: an earlier batch of its partition failed
// after this one had been sent, so the partition takes a new producer id,
// and sending this one again under it could write it twice.
var ErrInDoubt = errors.New("client: the batch may have been written")

// ProducerConfig configures a Producer. Zero values take the defaults.
type ProducerConfig struct {
	// Acks is the durability every acknowledgement waits for; unspecified
	// means the topic's "acks" config.
	Acks stratav1.Acks
	// Linger is how long a partition's batch waits for more records before
	// it is sent (default 5 ms; negative sends at once).
	Linger time.Duration
	// BatchBytes is the size at which a partition's batch is sent without
	// waiting for Linger (default 256 KiB). Keep it below the topic's
	// max.message.bytes.
	BatchBytes int
	// MaxInFlightBytes bounds the record bytes buffered and not yet
	// acknowledged (default 64 MiB). Produce blocks while it is reached, so
	// a slow broker pushes back on the application instead of growing
	// memory.
	MaxInFlightBytes int
	// MaxRequestBytes bounds one produce request, which combines ready
	// batches of several partitions led by the same broker (default 4 MiB).
	MaxRequestBytes int
	// MaxInFlightRequests bounds the pipelined, unacknowledged requests per
	// broker (default 32).
	MaxInFlightRequests int
	// Retries is how often a batch is retried after a retriable error
	// (default 10; negative: never), waiting RetryBackoff (default 100 ms) doubled per try up
	// to 2 s, with jitter. A retried batch may land after a later batch of
	// the same partition: with pipelining and no idempotence (yet), order is
	// kept only while nothing fails. A retry of a batch whose
	// acknowledgement was lost (the broker wrote it, then the connection
	// broke) writes it twice; disable retries where that matters.
	Retries      int
	RetryBackoff time.Duration
	// DeliveryTimeout bounds the time from Produce to the acknowledgement,
	// retries included (default 2 min).
	DeliveryTimeout time.Duration
	// Partitioner picks partitions (default: Kafka-compatible, murmur2 on
	// the key, sticky for records without one). With ManualPartitions the
	// producer uses each Record's Partition as given.
	Partitioner      Partitioner
	ManualPartitions bool
	// Idempotent gives the producer an id and numbers its records per
	// partition (the RecordBatch producer id and sequence), so the leader
	// writes a batch once however often it is retried - a retry after a
	// lost acknowledgement no longer duplicates, across failovers too -
	// and writes each partition's batches in the order they were
	// produced. A retry of a batch written so long ago that the leader no
	// longer remembers its offsets (it keeps a producer's last 5 batches)
	// is acknowledged with Record.Offset -1. After a batch fails (out of
	// retries or DeliveryTimeout) the partition continues under a new
	// producer id, and batches in flight at that moment may be written
	// twice.
	Idempotent bool
}

func (c *ProducerConfig) setDefaults() {
	if c.Linger == 0 {
		c.Linger = 5 * time.Millisecond
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 256 << 10
	}
	if c.MaxInFlightBytes <= 0 {
		c.MaxInFlightBytes = 64 << 20
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 4 << 20
	}
	if c.MaxInFlightRequests <= 0 {
		c.MaxInFlightRequests = 32
	}
	if c.Retries == 0 {
		c.Retries = 10
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.DeliveryTimeout <= 0 {
		c.DeliveryTimeout = 2 * time.Minute
	}
	if c.Partitioner == nil {
		c.Partitioner = NewDefaultPartitioner()
	}
}

// Record is a record to produce, and once acknowledged, where it landed.
type Record struct {
	Topic string
	// Partition is set by the producer's partitioner, or given by the
	// caller with ManualPartitions.
	Partition int32
	Key       []byte
	Value     []byte
	Headers   []segment.RecordHeader
	// Timestamp is the record's create time (zero: when Produce is called).
	Timestamp time.Time
	// Offset is set when the record is acknowledged.
	Offset int64
}

func (r *Record) size() int {
	n := len(r.Key) + len(r.Value) + 24
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}

// Promise is called once per produced record with its outcome. Promises
// run on the producer's internal goroutines: keep them short, and do not
// call Flush, ProduceSync or Close from one (Produce is fine). The
// producer does not use the Record once its promise has returned: the
// caller may reuse it from then on.
type Promise func(*Record, error)

type topicPartition struct {
	topic string
	p     int32
}

// batch is the records of one partition sent together.
type batch struct {
	tp       topicPartition
	records  []*Record
	promises []Promise
	bytes    int // estimated, as charged to the in-flight budget
	enc      *encBuf
	// With an idempotent producer: the producer id and first sequence the
	// batch is numbered with (when it closes, in the order the
	// partition's records were produced; renumbered, in that order, when
	// the partition starts a new id), and version, bumped by each
	// renumbering (guarded by Producer.mu). encVersion and encPid are what
	// enc was built with (enc, encVersion and encPid: whoever holds the
	// batch, which is in one place at a time: a sink's queue, a request,
	// resolve).
	pid     int64
	baseSeq int32
	version int
	// sentPid is the id the batch was last encoded for a request with
	// (sent is whether it ever was); inDoubt, when set, is the error it
	// fails with instead of being sent again (resolve). Guarded by
	// Producer.mu.
	sentPid    int64
	sent       bool
	inDoubt    error
	encVersion int
	encPid     int64
	created    time.Time
	attempts   int
	timer      *time.Timer // linger timer while open
}

// Producer batches records per partition and sends them to the partitions'
// leaders over pipelined produce streams. It is safe for concurrent use.
type Producer struct {
	c      *Client
	cfg    ProducerConfig
	budget *semaphore.Weighted
	ctx    context.Context
	cancel context.CancelFunc

	hot atomic.Pointer[hotTopic] // the last topic's partitions and batch limit
	// topics holds a hotTopic for every topic produced to since the
	// client's metadata last changed: a map replaced, never changed, under
	// topicsMu, so that records alternating between topics find theirs
	// without a lock or an allocation.
	topics      atomic.Pointer[map[string]*hotTopic]
	topicsMu    sync.Mutex
	outstanding atomic.Int64 // records produced and not yet resolved
	producerID  int64        // -1 unless idempotent

	mu struct {
		sync.Mutex
		open map[topicPartition]*batch
		// hot is the open batch Produce added to last (nil once it
		// closes): records to one partition skip the map.
		hot     *batch
		sinks   map[string]*sink
		limits  map[string]int           // batch size limit per topic (max.message.bytes)
		seqs    map[topicPartition]int32 // next sequence, with an idempotent producer
		retries map[topicPartition]*retryQueue
		pids    map[topicPartition]int64 // a partition's producer id once reset
		// lastLen is the records of each partition's last closed batch:
		// the capacity its next batch starts with (grown by append, its
		// slices were 9 % of a 100-B producer's allocated bytes).
		lastLen map[topicPartition]int
		// unacked are an idempotent producer's numbered, unresolved
		// batches per partition, in sequence order.
		unacked map[topicPartition][]*batch
		// closedQ are the batches closed and not yet handed to a sink, per
		// partition, in the order they closed; dispatching marks a
		// partition whose queue a goroutine is handing over
		// (dispatchClosed), so that batches closed by different goroutines
		// (Produce, a linger timer, Flush) reach the sink in close order.
		closedQ     map[topicPartition][]*batch
		dispatching map[topicPartition]bool
		closed      bool
		drained     chan struct{} // closed and replaced when outstanding hits 0
	}
}

// NewProducer returns a producer on c. Close it to flush and stop.
func (c *Client) NewProducer(cfg ProducerConfig) *Producer {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Producer{c: c, cfg: cfg, budget: semaphore.NewWeighted(int64(cfg.MaxInFlightBytes)), ctx: ctx, cancel: cancel}
	p.mu.open = map[topicPartition]*batch{}
	p.mu.sinks = map[string]*sink{}
	p.mu.limits = map[string]int{}
	p.mu.seqs = map[topicPartition]int32{}
	p.mu.retries = map[topicPartition]*retryQueue{}
	p.mu.unacked = map[topicPartition][]*batch{}
	p.mu.pids = map[topicPartition]int64{}
	p.mu.lastLen = map[topicPartition]int{}
	p.mu.closedQ = map[topicPartition][]*batch{}
	p.mu.dispatching = map[topicPartition]bool{}
	p.producerID = -1
	if cfg.Idempotent {
		p.producerID = newProducerID()
	}
	p.mu.drained = make(chan struct{})
	return p
}

// Produce buffers r for sending and returns; promise (which may be nil) is
// called once with the outcome. Produce blocks while MaxInFlightBytes are
// buffered, until ctx ends. When Produce returns an error the record was
// not accepted and promise is not called.
func (p *Producer) Produce(ctx context.Context, r *Record, promise Promise) error {
	size := r.size()
	if size > p.cfg.MaxInFlightBytes {
		return fmt.Errorf("client: record of %d bytes exceeds MaxInFlightBytes %d", size, p.cfg.MaxInFlightBytes)
	}
	n, limit, err := p.topicInfo(ctx, r.Topic)
	if err != nil {
		return err
	}
	if p.cfg.ManualPartitions {
		if r.Partition < 0 || r.Partition >= n {
			return status.Errorf(codes.NotFound, "client: partition %d of %s does not exist (the topic has %d)", r.Partition, r.Topic, n)
		}
	} else {
		r.Partition = p.cfg.Partitioner.Partition(r.Topic, r.Key, n)
	}
	if r.Timestamp.IsZero() {
		r.Timestamp = time.Now()
	}
	if err := p.budget.Acquire(ctx, int64(size)); err != nil {
		return err
	}
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		p.budget.Release(int64(size))
		return ErrProducerClosed
	}
	p.outstanding.Add(1)
	tp := topicPartition{r.Topic, r.Partition}
	b := p.mu.hot
	if b == nil || b.tp != tp {
		b = p.mu.open[tp]
	}
	var full []*batch
	if b != nil && b.bytes+size > limit {
		full = append(full, p.closeBatchLocked(b))
		b = nil
	}
	if b == nil {
		b = &batch{tp: tp, created: time.Now()}
		if n := p.mu.lastLen[tp]; n > 0 {
			b.records, b.promises = make([]*Record, 0, n), make([]Promise, 0, n)
		}
		p.mu.open[tp] = b
		if p.cfg.Linger > 0 {
			b.timer = time.AfterFunc(p.cfg.Linger, func() { p.lingerDone(b) })
		}
	}
	p.mu.hot = b
	b.records = append(b.records, r)
	b.promises = append(b.promises, promise)
	b.bytes += size
	if b.bytes >= limit || p.cfg.Linger < 0 {
		full = append(full, p.closeBatchLocked(b))
	}
	p.mu.Unlock()
	if len(full) > 0 {
		if !p.cfg.ManualPartitions {
			p.cfg.Partitioner.BatchFull(tp.topic, n)
		}
		p.dispatchClosed(tp)
	}
	return nil
}

// hotTopic is what Produce needs to know of a topic besides its open
// batches, cached per topic while the client's metadata is unchanged:
// records then take one lock each instead of three (the two lookups were
// 9 % of a 100-B bench producer's CPU at 1,038,637 records/s:
// docs/benchmarks.md, seventeenth session). Entries are immutable.
type hotTopic struct {
	topic string
	gen   uint64 // Client.metaGen when n was read
	n     int32  // partitions
	limit int    // batchLimit
}

// topicInfo returns topic's partition count (fetching metadata when the
// topic is not cached) and batch size limit.
func (p *Producer) topicInfo(ctx context.Context, topic string) (int32, int, error) {
	gen := p.c.metaGen.Load()
	if h := p.hot.Load(); h != nil && h.gen == gen && h.topic == topic {
		return h.n, h.limit, nil
	}
	if m := p.topics.Load(); m != nil {
		if h := (*m)[topic]; h != nil && h.gen == gen {
			p.hot.Store(h)
			return h.n, h.limit, nil
		}
	}
	n, err := p.c.partitions(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	limit := p.batchLimit(ctx, topic)
	// gen was read before the partition count: a metadata update in
	// between leaves the entry stale-tagged, and the next call reads again.
	h := &hotTopic{topic: topic, gen: gen, n: n, limit: limit}
	p.hot.Store(h)
	p.topicsMu.Lock()
	m := map[string]*hotTopic{}
	if old := p.topics.Load(); old != nil {
		for t, e := range *old {
			if e.gen == gen { // entries of older metadata are dropped
				m[t] = e
			}
		}
	}
	m[topic] = h
	p.topics.Store(&m)
	p.topicsMu.Unlock()
	return n, limit, nil
}

// batchLimit is the size at which a batch of topic closes: BatchBytes, or
// less when the topic's max.message.bytes is smaller (learned once per
// topic; record sizes are estimated on the high side).
func (p *Producer) batchLimit(ctx context.Context, topic string) int {
	p.mu.Lock()
	limit, ok := p.mu.limits[topic]
	p.mu.Unlock()
	if ok {
		return limit
	}
	limit = p.cfg.BatchBytes
	if d, err := p.c.DescribeTopic(ctx, topic); err == nil {
		if v, err := strconv.Atoi(d.GetConfig()["max.message.bytes"]); err == nil && v > segment.BatchHeaderSize {
			limit = min(limit, v-segment.BatchHeaderSize)
		}
	}
	p.mu.Lock()
	p.mu.limits[topic] = limit
	p.mu.Unlock()
	return limit
}

// ProduceSync produces records and waits for all their acknowledgements.
// It returns the first error.
func (p *Producer) ProduceSync(ctx context.Context, records ...*Record) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, r := range records {
		wg.Add(1)
		err := p.Produce(ctx, r, func(_ *Record, err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
		if err != nil {
			wg.Done()
			wg.Wait()
			return err
		}
	}
	p.flushOpen()
	wg.Wait()
	return first
}

func (p *Producer) lingerDone(b *batch) {
	p.mu.Lock()
	if p.mu.open[b.tp] != b {
		p.mu.Unlock()
		return
	}
	p.closeBatchLocked(b)
	p.mu.Unlock()
	p.dispatchClosed(b.tp)
}

// closeBatchLocked removes b from the open batches; with an idempotent
// producer it takes its sequence numbers now, in the order the
// partition's records were produced, which is the only order the leader
// will write them in whatever order retries reach it. The sink encodes it
// when it first sends it.
func (p *Producer) closeBatchLocked(b *batch) *batch {
	delete(p.mu.open, b.tp)
	if p.mu.hot == b {
		p.mu.hot = nil
	}
	p.mu.lastLen[b.tp] = len(b.records)
	if b.timer != nil {
		b.timer.Stop()
	}
	if p.producerID >= 0 {
		if int64(p.mu.seqs[b.tp])+int64(len(b.records)) > math.MaxInt32 {
			// Sequences do not wrap: a new id starts again at 0.
			p.resetLocked(b.tp)
		}
		b.pid = p.pidLocked(b.tp)
		b.baseSeq = p.mu.seqs[b.tp]
		p.mu.seqs[b.tp] = b.baseSeq + int32(len(b.records))
		p.mu.unacked[b.tp] = append(p.mu.unacked[b.tp], b)
	}
	p.mu.closedQ[b.tp] = append(p.mu.closedQ[b.tp], b)
	return b
}

// dispatchClosed hands tp's closed batches to their sinks, oldest first.
// Whoever closes a batch calls it after unlocking p.mu; when another
// goroutine is already handing tp's queue over, it returns at once and
// that goroutine takes the new batch too, after the older ones.
func (p *Producer) dispatchClosed(tp topicPartition) {
	p.mu.Lock()
	if p.mu.dispatching[tp] {
		p.mu.Unlock()
		return
	}
	p.mu.dispatching[tp] = true
	for len(p.mu.closedQ[tp]) > 0 {
		b := p.mu.closedQ[tp][0]
		p.mu.closedQ[tp] = p.mu.closedQ[tp][1:]
		p.mu.Unlock()
		p.dispatch(b, false)
		p.mu.Lock()
	}
	delete(p.mu.closedQ, tp)
	delete(p.mu.dispatching, tp)
	p.mu.Unlock()
}

// encode builds b's RecordBatch when it is first sent, and again after its
// partition renumbered its batches; otherwise a retry resends the same
// bytes.
func (p *Producer) encode(b *batch) {
	if p.producerID >= 0 {
		p.mu.Lock()
		pid, seq, version := b.pid, b.baseSeq, b.version
		b.sentPid, b.sent = pid, true
		p.mu.Unlock()
		if b.enc != nil && b.encVersion == version {
			return
		}
		b.dropEncoded()
		b.enc = p.appendBatch(b, segment.BatchOptions{ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq})
		b.encVersion, b.encPid = version, pid
		return
	}
	if b.enc == nil {
		b.enc = p.appendBatch(b, segment.NoProducer)
	}
}

// dropEncoded releases b's hold on its encoded bytes (when it is
// resolved, renumbered or split).
func (b *batch) dropEncoded() {
	if b.enc != nil {
		b.enc.release()
		b.enc = nil
	}
}

// encBuf is a batch's encoded RecordBatch, in a buffer from rpcbuf.Pool
// that goes back there once the last of its holders releases it: the
// batch (until it is resolved, renumbered or split) and every Send of it
// in progress (a retry can be acknowledged while the Send on the stream
// that broke has not returned yet). Allocated each time, these buffers
// were a third of a 100-B producer's allocated bytes, each one a large
// object the collector freed and the OS faulted in again.
type encBuf struct {
	buf  *[]byte
	refs atomic.Int32
}

func (e *encBuf) bytes() []byte { return *e.buf }
func (e *encBuf) acquire()      { e.refs.Add(1) }
func (e *encBuf) release() {
	if e.refs.Add(-1) == 0 {
		rpcbuf.Pool.Put(e.buf)
	}
}

// appendBatch renders b's records as one RecordBatch.
func (p *Producer) appendBatch(b *batch, opts segment.BatchOptions) *encBuf {
	// The segment.Records are scratch, reused across batches: they were
	// 23 % of a 100-B producer's allocated bytes (docs/benchmarks.md).
	sp, _ := scratchRecords.Get().(*[]segment.Record)
	if sp == nil {
		sp = new([]segment.Record)
	}
	recs := slices.Grow((*sp)[:0], len(b.records))[:len(b.records)]
	for i, r := range b.records {
		recs[i] = segment.Record{Timestamp: r.Timestamp.UnixMilli(), Key: r.Key, Value: r.Value, Headers: r.Headers}
	}
	// b.bytes is estimated on the high side: the batch fits (a buffer
	// append outgrew would just not be the pool's).
	buf := rpcbuf.Pool.Get(b.bytes + segment.BatchHeaderSize)
	*buf = segment.AppendBatch((*buf)[:0], opts, recs)
	clear(recs) // no references to the caller's keys and values kept
	*sp = recs
	scratchRecords.Put(sp)
	e := &encBuf{buf: buf}
	e.refs.Store(1)
	return e
}

// scratchRecords holds appendBatch's *[]segment.Record.
var scratchRecords sync.Pool

// flushOpen sends every open batch now.
func (p *Producer) flushOpen() {
	p.mu.Lock()
	var tps []topicPartition
	for tp, b := range p.mu.open {
		p.closeBatchLocked(b)
		tps = append(tps, tp)
	}
	p.mu.Unlock()
	for _, tp := range tps {
		p.dispatchClosed(tp)
	}
}

// Flush sends every buffered record and waits until no produced record is
// unresolved, or ctx ends. Records produced concurrently with Flush are
// waited for too.
func (p *Producer) Flush(ctx context.Context) error {
	p.flushOpen()
	for {
		p.mu.Lock()
		ch := p.mu.drained
		p.mu.Unlock()
		if p.outstanding.Load() == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close flushes (for at most DeliveryTimeout) and stops the producer.
// Records still unresolved then fail with ErrProducerClosed.
func (p *Producer) Close() error {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return nil
	}
	p.mu.closed = true
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DeliveryTimeout)
	defer cancel()
	err := p.Flush(ctx)
	p.cancel()
	return err
}

// resolve completes a batch: every record's promise is called and its
// budget released.
func (p *Producer) resolve(b *batch, base int64, err error) {
	if p.producerID >= 0 {
		p.mu.Lock()
		q := p.mu.unacked[b.tp]
		if i := slices.Index(q, b); i >= 0 {
			p.mu.unacked[b.tp] = slices.Delete(q, i, i+1)
		}
		if err != nil && b.pid == p.pidLocked(b.tp) {
			// Its sequences may never be written: later batches of the
			// partition would wait for them forever. Start a new id. A
			// later batch already sent under this one may have been
			// written (its answer lost) as well as not: sent again under
			// the new id, it would be written twice. It fails instead,
			// unless the answer to the send under way acknowledges it.
			for _, l := range p.mu.unacked[b.tp] {
				if l.sent && l.sentPid == b.pid && l.inDoubt == nil {
					l.inDoubt = fmt.Errorf("%w: an earlier batch of %s/%d failed after it was sent (%v)", ErrInDoubt, b.tp.topic, b.tp.p, err)
				}
			}
			p.resetLocked(b.tp)
		}
		p.mu.Unlock()
	}
	// The budget is released first, so a promise may Produce again.
	p.budget.Release(int64(b.bytes))
	for i, r := range b.records {
		if err == nil {
			if base >= 0 {
				r.Offset = base + int64(i)
			} else {
				r.Offset = -1
			}
		}
		if b.promises[i] != nil {
			b.promises[i](r, err)
		}
	}
	b.dropEncoded()
	if p.outstanding.Add(-int64(len(b.records))) == 0 {
		p.mu.Lock()
		close(p.mu.drained)
		p.mu.drained = make(chan struct{})
		p.mu.Unlock()
	}
}

// retry schedules b again after a retriable error, or fails it when it is
// out of tries or time.
func (p *Producer) retry(b *batch, err error) {
	if p.producerID >= 0 && status.Code(err) == codes.OutOfRange {
		// The leader does not know this producer id (a new leader, or one
		// whose log no longer holds it). If this is the partition's oldest
		// unresolved batch, sent with its current numbering, the
		// partition starts a new id at sequence 0 from this batch on
		// (later batches: their turn comes after it).
		p.mu.Lock()
		if q := p.mu.unacked[b.tp]; len(q) > 0 && q[0] == b && b.encPid == p.pidLocked(b.tp) {
			p.resetLocked(b.tp)
		}
		p.mu.Unlock()
		p.queueRetry(b, backoff(p.cfg.RetryBackoff, 1))
		return
	}
	// An out-of-order sequence means an earlier batch of the partition is
	// being retried: wait for it without spending a try (DeliveryTimeout
	// still bounds the wait).
	if p.producerID < 0 || status.Code(err) != codes.Aborted {
		b.attempts++
	}
	if !retriable(err) || b.attempts > p.cfg.Retries || time.Since(b.created) > p.cfg.DeliveryTimeout || p.ctx.Err() != nil {
		if p.ctx.Err() != nil && retriable(err) {
			err = fmt.Errorf("%w: %v", ErrProducerClosed, err)
		}
		p.resolve(b, -1, err)
		return
	}
	d := backoff(p.cfg.RetryBackoff, b.attempts)
	p.c.logger.Debug("retrying produce", "topic", b.tp.topic, "partition", b.tp.p, "attempt", b.attempts, "in", d, "err", err)
	if p.producerID >= 0 {
		p.queueRetry(b, d)
		return
	}
	time.AfterFunc(d, func() { p.dispatch(b, true) })
}

// split sends b's records as two batches, first half first.
func (p *Producer) split(b *batch) {
	mid := len(b.records) / 2
	halves := [2]*batch{
		{tp: b.tp, records: b.records[:mid], promises: b.promises[:mid], created: b.created, attempts: b.attempts},
		{tp: b.tp, records: b.records[mid:], promises: b.promises[mid:], created: b.created, attempts: b.attempts},
	}
	if p.producerID >= 0 {
		// The halves take b's sequences and place.
		p.mu.Lock()
		for i, h := range halves {
			h.pid, h.baseSeq, h.version = b.pid, b.baseSeq+int32(i*mid), b.version
		}
		q := p.mu.unacked[b.tp]
		if i := slices.Index(q, b); i >= 0 {
			p.mu.unacked[b.tp] = slices.Replace(q, i, i+1, halves[0], halves[1])
		}
		p.mu.Unlock()
	}
	for _, r := range halves[0].records {
		halves[0].bytes += r.size()
	}
	halves[1].bytes = b.bytes - halves[0].bytes
	b.dropEncoded() // the halves are encoded anew
	p.c.logger.Debug("batch above max.message.bytes; splitting", "topic", b.tp.topic, "partition", b.tp.p, "records", len(b.records))
	for _, h := range halves {
		if p.producerID >= 0 {
			// In sequence order, ahead of the partition's later batches.
			p.queueRetry(h, 0)
			continue
		}
		p.dispatch(h, false)
	}
}

// backoff is base doubled per attempt, capped at 2 s, with ±25% jitter.
func backoff(base time.Duration, attempt int) time.Duration {
	d := base << min(max(attempt-1, 0), 10)
	d = min(d, 2*time.Second)
	return d - d/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// resetLocked gives the partition a new producer id and renumbers its
// unresolved batches from sequence 0, in order; each is encoded again
// when next sent.
func (p *Producer) resetLocked(tp topicPartition) {
	pid := newProducerID()
	p.mu.pids[tp] = pid
	seq := int32(0)
	for _, b := range p.mu.unacked[tp] {
		b.pid, b.baseSeq = pid, seq
		b.version++
		seq += int32(len(b.records))
	}
	p.mu.seqs[tp] = seq
	p.c.logger.Debug("idempotent producer: new producer id for the partition", "topic", tp.topic, "partition", tp.p, "renumbered", len(p.mu.unacked[tp]))
}

// pidLocked is the partition's current producer id.
func (p *Producer) pidLocked(tp topicPartition) int64 {
	if id, ok := p.mu.pids[tp]; ok {
		return id
	}
	return p.producerID
}

func newProducerID() int64 {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return int64(binary.BigEndian.Uint64(b[:]) >> 1) // non-negative
}

// queueRetry holds a failed batch of an idempotent producer in its
// partition's retry queue; after d, the whole queue is sent again in the
// order its records were produced, since the leader takes a partition's
// batches only in sequence order. While a partition has batches waiting,
// its new batches wait too.
func (p *Producer) queueRetry(b *batch, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.mu.retries[b.tp]
	if q == nil {
		q = &retryQueue{}
		p.mu.retries[b.tp] = q
	}
	q.batches = append(q.batches, b)
	if q.flushing {
		q.failed = true // the flush arms the timer again when it is done
		return
	}
	if q.timer == nil {
		q.timer = time.AfterFunc(d, func() { p.flushRetries(b.tp) })
	}
}

// retryQueue is a partition's batches waiting to be sent again. While
// flushing, the queue stays in place, so that batches produced meanwhile
// line up behind the wave instead of overtaking it; failed is set when one
// of the wave failed again meanwhile.
type retryQueue struct {
	batches  []*batch
	timer    *time.Timer
	flushing bool
	failed   bool
}

// flushRetries sends a partition's waiting batches in sequence order (the
// order their records were produced: all of them are numbered under the
// partition's current id), whatever order their errors came back in.
// Batches that arrive while it routes are routed after them, until none
// are left.
func (p *Producer) flushRetries(tp topicPartition) {
	// One metadata refresh for the wave, then in order to the leader.
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	_, _ = p.c.leaderAddr(ctx, tp.topic, tp.p, true)
	cancel()
	for {
		p.mu.Lock()
		q := p.mu.retries[tp]
		switch {
		case q == nil:
			p.mu.Unlock()
			return
		case len(q.batches) == 0:
			delete(p.mu.retries, tp)
			p.mu.Unlock()
			return
		case q.failed:
			// Part of the wave failed already: wait again, the rest behind.
			q.failed, q.flushing = false, false
			q.timer = time.AfterFunc(backoff(p.cfg.RetryBackoff, 1), func() { p.flushRetries(tp) })
			p.mu.Unlock()
			return
		}
		bs := q.batches
		q.batches, q.flushing = nil, true
		sort.Slice(bs, func(i, j int) bool { return bs[i].baseSeq < bs[j].baseSeq })
		p.mu.Unlock()
		for i, b := range bs {
			p.mu.Lock()
			doubt := b.inDoubt
			p.mu.Unlock()
			if doubt != nil {
				// Failing it starts a new id again, for the rest of bs.
				p.resolve(b, -1, doubt)
				continue
			}
			p.route(b, false)
			p.mu.Lock()
			if q.failed && i+1 < len(bs) {
				// It could not even be sent: the rest would only be
				// refused as out of order; they wait behind it.
				q.batches = append(bs[i+1:], q.batches...)
				p.mu.Unlock()
				break
			}
			p.mu.Unlock()
		}
	}
}

// dispatch routes b to the sink of its partition's leader - or, for an
// idempotent producer whose partition has batches waiting for a retry,
// behind them.
func (p *Producer) dispatch(b *batch, refresh bool) {
	if p.producerID >= 0 {
		p.mu.Lock()
		if q := p.mu.retries[b.tp]; q != nil {
			q.batches = append(q.batches, b)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
	p.route(b, refresh)
}

// route sends b to the sink of its partition's leader.
func (p *Producer) route(b *batch, refresh bool) {
	if p.ctx.Err() != nil {
		p.resolve(b, -1, ErrProducerClosed)
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	addr, err := p.c.leaderAddr(ctx, b.tp.topic, b.tp.p, refresh)
	cancel()
	if err != nil && p.ctx.Err() != nil {
		p.resolve(b, -1, fmt.Errorf("%w: %v", ErrProducerClosed, err))
		return
	}
	if err != nil {
		if errors.Is(err, ErrNoBroker) {
			err = status.Error(codes.Unavailable, err.Error())
		}
		p.retry(b, err)
		return
	}
	p.mu.Lock()
	s := p.mu.sinks[addr]
	if s == nil {
		s = &sink{p: p, addr: addr, wake: make(chan struct{}, 1)}
		p.mu.sinks[addr] = s
		go s.run()
	}
	p.mu.Unlock()
	s.enqueue(b)
}

// sink sends the batches for one broker over a pipelined ProduceStream.
// Lock order: sink.mu, then Producer.mu (sendOne encodes under sink.mu).
type sink struct {
	p    *Producer
	addr string
	wake chan struct{}

	mu     sync.Mutex
	queue  []*batch
	stream *pstream
	nextID uint64

	encs []*encBuf // sendOne's scratch (the run goroutine only)
}

// pstream is one open ProduceStream and its unanswered requests, oldest
// first.
type pstream struct {
	cs     stratav1.ProduceService_ProduceStreamClient
	cancel context.CancelFunc
	slots  chan struct{}
	done   chan struct{} // closed when the stream is dead
	mu     sync.Mutex
	// pending are the sent, unanswered requests; dead is set once the
	// receiver gave up on the stream.
	pending []*request
	dead    bool
}

type request struct {
	id      uint64
	batches []*batch
}

func (s *sink) enqueue(b *batch) {
	s.mu.Lock()
	s.queue = append(s.queue, b)
	s.mu.Unlock()
	if s.p.ctx.Err() != nil {
		// The sink's goroutine may be gone: fail what is queued here.
		s.failQueue(ErrProducerClosed)
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sink) run() {
	for {
		select {
		case <-s.wake:
		case <-s.p.ctx.Done():
			s.failQueue(ErrProducerClosed)
			return
		}
		for s.sendOne() {
		}
	}
}

func (s *sink) failQueue(err error) {
	s.mu.Lock()
	q := s.queue
	s.queue = nil
	s.mu.Unlock()
	for _, b := range q {
		s.p.resolve(b, -1, err)
	}
}

// sendOne sends one request of queued batches; false when the queue is
// empty.
func (s *sink) sendOne() bool {
	s.mu.Lock()
	if len(s.queue) == 0 {
		s.mu.Unlock()
		return false
	}
	var bs []*batch
	// This Send's holds on the batches' encoded bytes, taken while the
	// batches are still only the queue's (once the request is pending, a
	// broken stream's receiver may retry and resolve them), released when
	// the Send has returned (it has copied them) or was never made.
	encs := s.encs[:0]
	defer func() {
		for _, e := range encs {
			e.release()
		}
		clear(encs) // the scratch keeps no released buffer reachable
		s.encs = encs[:0]
	}()
	size := 0
	for len(s.queue) > 0 {
		s.p.encode(s.queue[0])
		n := len(s.queue[0].enc.bytes())
		if len(bs) > 0 && size+n > s.p.cfg.MaxRequestBytes {
			break
		}
		size += n
		s.queue[0].enc.acquire()
		encs = append(encs, s.queue[0].enc)
		bs = append(bs, s.queue[0])
		s.queue = s.queue[1:]
	}
	s.nextID++
	req := &request{id: s.nextID, batches: bs}
	st := s.stream
	s.mu.Unlock()

	if st == nil {
		var err error
		if st, err = s.open(); err != nil {
			for _, b := range bs {
				s.p.retry(b, err)
			}
			return true
		}
	}
	select {
	case st.slots <- struct{}{}:
	case <-st.done:
		for _, b := range bs {
			s.p.retry(b, status.Error(codes.Unavailable, "client: produce stream broke"))
		}
		return true
	case <-s.p.ctx.Done():
		for _, b := range bs {
			s.p.resolve(b, -1, ErrProducerClosed)
		}
		return true
	}
	st.mu.Lock()
	if st.dead {
		st.mu.Unlock()
		<-st.slots
		for _, b := range bs {
			s.p.retry(b, status.Error(codes.Unavailable, "client: produce stream broke"))
		}
		return true
	}
	st.pending = append(st.pending, req)
	st.mu.Unlock()
	pr := &stratav1.ProduceRequest{RequestId: req.id, Acks: s.p.cfg.Acks, TimeoutMs: 30000}
	for i, b := range bs {
		pr.Partitions = append(pr.Partitions, &stratav1.PartitionRecords{Topic: b.tp.topic, Partition: b.tp.p, Records: encs[i].bytes()})
	}
	if err := st.cs.Send(pr); err != nil {
		// The receiver sees the broken stream and retries what is pending.
		st.cancel()
	}
	return true
}

// open starts a produce stream to the sink's broker and its receiver.
func (s *sink) open() (*pstream, error) {
	cc, err := s.p.c.conn(s.addr)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	ctx, cancel := context.WithCancel(s.p.ctx)
	cs, err := stratav1.NewProduceServiceClient(cc).ProduceStream(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	st := &pstream{cs: cs, cancel: cancel, slots: make(chan struct{}, s.p.cfg.MaxInFlightRequests), done: make(chan struct{})}
	s.mu.Lock()
	s.stream = st
	s.mu.Unlock()
	go s.receive(st)
	return st, nil
}

// receive matches responses to pending requests in order. When the stream
// breaks, every pending request is retried.
func (s *sink) receive(st *pstream) {
	for {
		resp, err := st.cs.Recv()
		var req *request
		if err == nil {
			st.mu.Lock()
			if len(st.pending) > 0 && st.pending[0].id == resp.GetRequestId() {
				req = st.pending[0]
				st.pending = st.pending[1:]
			} else {
				err = status.Errorf(codes.Internal, "client: response %d does not match the oldest pending request", resp.GetRequestId())
			}
			st.mu.Unlock()
		}
		if err != nil {
			st.cancel()
			st.mu.Lock()
			st.dead = true
			pending := st.pending
			st.pending = nil
			st.mu.Unlock()
			close(st.done)
			s.mu.Lock()
			if s.stream == st {
				s.stream = nil
			}
			s.mu.Unlock()
			if !retriable(err) && status.Code(err) != codes.Canceled && status.Code(err) != codes.Internal && len(pending) > 0 {
				// The broker refused the oldest unanswered request itself
				// (a malformed one): it fails; the broker never read the
				// later ones, which are retried.
				for _, b := range pending[0].batches {
					s.p.resolve(b, -1, err)
				}
				pending = pending[1:]
			}
			err = status.Errorf(codes.Unavailable, "client: produce stream to %s: %v", s.addr, err)
			for _, r := range pending {
				for _, b := range r.batches {
					s.p.retry(b, err)
				}
			}
			return
		}
		<-st.slots
		s.handle(req, resp)
	}
}

// handle resolves or retries each batch of an answered request.
func (s *sink) handle(req *request, resp *stratav1.ProduceResponse) {
	results := resp.GetPartitions()
	for i, b := range req.batches {
		if i >= len(results) {
			s.p.retry(b, status.Error(codes.Internal, "client: response lacks a partition result"))
			continue
		}
		r := results[i]
		if e := r.GetError(); e != nil && codes.Code(e.GetCode()) == codes.ResourceExhausted && len(b.records) > 1 {
			// Above the topic's max.message.bytes: send it in halves, in
			// order (a single record that is too large fails).
			s.p.split(b)
			continue
		}
		if e := r.GetError(); e != nil && codes.Code(e.GetCode()) == codes.AlreadyExists && s.p.producerID >= 0 {
			// A retry of a batch the leader wrote too long ago to remember
			// where: its sequences are at or below the last written, and
			// under one producer id a sequence is only ever one record, so
			// it is in the log. Acknowledged, at offsets unknown (-1).
			s.p.resolve(b, -1, nil)
			continue
		}
		if e := r.GetError(); e != nil {
			s.p.retry(b, status.Error(codes.Code(e.GetCode()), e.GetMessage()))
			continue
		}
		s.p.resolve(b, r.GetBaseOffset(), nil)
	}
}
