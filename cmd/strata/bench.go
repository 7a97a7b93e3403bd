package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/client"
	"github.com/strata-stream/strata/internal/lathist"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

type benchOptions struct {
	broker     string
	topic      string
	records    int64
	recordSize int
	partitions int32
	producers  int
	acks       string
	linger     time.Duration
	batchBytes int
	rate       float64
	inFlight   int
	warmup     time.Duration
	cpuProfile string
	schedSlice string
	traceFile  string
	memProfile string
	payload    string
	roundRobin bool
	timeline   string
	paceStep   time.Duration
	window     time.Duration
}

func newBenchCmd() *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure produce and consume throughput and latency",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.broker, "broker", "127.0.0.1:9400", "broker address host:port (env STRATA_BROKER)")
	pf.StringVar(&o.topic, "topic", "bench", "topic (bench produce creates it when missing)")
	pf.Int64Var(&o.records, "records", 1_000_000, "records to produce or consume")
	pf.IntVar(&o.recordSize, "record-size", 1024, "record value size in bytes (random, incompressible)")
	pf.Int32Var(&o.partitions, "partitions", 1, "partitions of the topic when bench produce creates it")
	pf.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the benchmark client to this file")
	pf.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile of the benchmark client to this file, when it ends (go tool pprof -sample_index=alloc_space)")
	pf.StringVar(&o.traceFile, "trace", "", "write an execution trace of the benchmark client to this file (go tool trace)")
	produce := &cobra.Command{
		Use:   "produce",
		Short: "Produce --records records and report records/s, MB/s and acknowledgement latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := setSchedSlice(o.schedSlice, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))); err != nil {
				return err
			}
			return withMemProfile(o.memProfile, func() error {
				return withTrace(o.traceFile, func() error { return withProfile(o.cpuProfile, func() error { return runBenchProduce(cmd, o) }) })
			})
		},
	}
	f := produce.Flags()
	f.IntVar(&o.producers, "producers", 1, "concurrent producers, each with its own connection")
	f.StringVar(&o.schedSlice, "sched-slice", "auto", "Linux 6.12+: the scheduler slice of the benchmark client's threads, as strata serve --sched-slice: auto, 0 (the kernel's default) or 100us-100ms")
	f.StringVar(&o.acks, "acks", "leader", "acknowledgement: none, leader or all")
	f.DurationVar(&o.linger, "linger", 2*time.Millisecond, "producer linger")
	f.IntVar(&o.batchBytes, "batch-bytes", 256<<10, "producer batch size per partition")
	f.Float64Var(&o.rate, "rate", 0, "target records/s across all producers (0: as fast as possible)")
	f.DurationVar(&o.paceStep, "pace-step", 0, "with --rate, the shortest wait a producer sleeps for: records due sooner are sent at once, a little early (0: sleep for every wait; 200us took 6 % less client CPU at 860,881 100-B records/s, with no difference in p99)")
	f.IntVar(&o.inFlight, "max-in-flight-bytes", 64<<20, "producer in-flight byte bound")
	f.DurationVar(&o.warmup, "warmup", 0, "produce this long first (at --rate, records not measured), then the --records measured: the figures then describe a broker already busy")
	f.BoolVar(&o.roundRobin, "round-robin", false, "send record i to partition i mod partitions (default: the sticky partitioner, one partition per batch), so every partition has records in every flush")
	f.StringVar(&o.timeline, "timeline", "", "write the ack latency per --timeline-window of send time to this file (TSV: window start ms, records, p50, p99, max ms), to see when a tail happens")
	f.DurationVar(&o.window, "timeline-window", 100*time.Millisecond, "window of --timeline")
	f.StringVar(&o.payload, "payload", "random", "record values: random (incompressible, one value) or json (8192 distinct JSON-like log lines, a quarter random bytes)")
	consume := &cobra.Command{
		Use:   "consume",
		Short: "Consume --records records from the earliest offsets and report records/s, MB/s and poll latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withMemProfile(o.memProfile, func() error { return withProfile(o.cpuProfile, func() error { return runBenchConsume(cmd, o) }) })
		},
	}
	cmd.AddCommand(produce, consume, newBenchDiskCmd(), newBenchFloorCmd(o), newBenchFloorServerCmd())
	return cmd
}

// benchValues returns the record values bench produce cycles through.
func benchValues(payload string, size int) ([][]byte, error) {
	switch payload {
	case "random":
		v := make([]byte, size)
		_, _ = rand.Read(v)
		return [][]byte{v}, nil
	case "json":
		out := make([][]byte, 8192)
		for i := range out {
			v := make([]byte, size/4, size+200)
			_, _ = rand.Read(v)
			for n := 0; len(v) < size; n++ {
				v = fmt.Appendf(v, `{"ts":%d,"service":"checkout","level":"info","user":"u-%05d","order":%d,"amount":%d.%02d,"currency":"EUR","region":"eu-west-1"},`,
					1_700_000_000_000+i*1000+n, (i*7919+n)%100_000, i*31+n, (i+n)%500, n%100)
			}
			out[i] = v[:size]
		}
		return out, nil
	}
	return nil, fmt.Errorf("--payload %q: want random or json", payload)
}

// withTrace runs fn under an execution trace written to path (none if
// empty).
func withTrace(path string, fn func() error) error {
	return withRecorder(path, trace.Start, trace.Stop, fn)
}

// withProfile runs fn under a CPU profile written to path (none if empty).
func withProfile(path string, fn func() error) error {
	return withRecorder(path, pprof.StartCPUProfile, pprof.StopCPUProfile, fn)
}

// withMemProfile runs fn, then writes the allocation profile to path
// (none if empty). The file is created first, so a bad path fails
// before the run.
func withMemProfile(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := fn(); err != nil {
		return err
	}
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

// withRecorder runs fn between start and stop of a recorder writing to the
// file at path; with no path it just runs fn.
func withRecorder(path string, start func(io.Writer) error, stop func(), fn func() error) error {
	if path == "" {
		return fn()
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := start(f); err != nil {
		return err
	}
	defer stop()
	return fn()
}

// progress prints a line every second until stop is closed.
func progress(w io.Writer, what string, total int64, done *atomic.Int64, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start, last, lastN := time.Now(), time.Now(), int64(0)
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n := done.Load()
			fmt.Fprintf(w, "%s %d/%d records (%.0f%%), %.0f records/s now, %s elapsed\n",
				what, n, total, 100*float64(n)/float64(total), float64(n-lastN)/now.Sub(last).Seconds(), now.Sub(start).Round(time.Second))
			last, lastN = now, n
		}
	}
}

// touched returns an empty slice of capacity n whose memory has been
// written (zeroed), for samples taken while measuring: growing a slice,
// or the first write to a page of a new one, faults pages in, which on
// some VMs costs more than what is measured (on the project's benchmark
// VM, bench disk's byte-latency p99 at 50 MB/s was 13.8-30.2 ms with a
// growing slice, 3.7-4.3 ms with this).
func touched(n int) []time.Duration {
	s := make([]time.Duration, n)
	// make does not write memory fresh from the OS (it is zero already),
	// so the first writes would fault its pages in: write it now.
	clear(s)
	return s[:0]
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

func report(w io.Writer, what string, n int64, size int, elapsed time.Duration, lat *lathist.Hist, latName string) {
	secs := elapsed.Seconds()
	fmt.Fprintf(w, "%s: %d records of %d B in %s\n", what, n, size, elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "throughput: %.0f records/s, %.1f MB/s\n", float64(n)/secs, float64(n)*float64(size)/secs/1e6)
	if lat.Count() > 0 {
		fmt.Fprintf(w, "%s latency: %s\n", latName, fmtPercentiles(lat.Quantile(0.50), lat.Quantile(0.99), lat.Quantile(0.999), lat.Max()))
	}
}

// percentiles is "p50 X, p99 Y, p99.9 Z, max W" of sorted durations.
func percentiles(sorted []time.Duration) string {
	return fmtPercentiles(percentile(sorted, 0.50), percentile(sorted, 0.99), percentile(sorted, 0.999), percentile(sorted, 1))
}

func fmtPercentiles(p50, p99, p999, top time.Duration) string {
	return fmt.Sprintf("p50 %s, p99 %s, p99.9 %s, max %s", fmtDur(p50), fmtDur(p99), fmtDur(p999), fmtDur(top))
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }

func runBenchProduce(cmd *cobra.Command, o *benchOptions) error {
	acks, err := parseAcks(o.acks)
	if err != nil {
		return err
	}
	if o.records <= 0 || o.recordSize < 0 || o.producers <= 0 {
		return fmt.Errorf("--records and --producers must be positive, --record-size not negative")
	}
	ctx := cmd.Context()
	admin, err := newClient(o.broker)
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := createTopic(ctx, admin, o.topic, o.partitions); err != nil {
		return err
	}
	values, err := benchValues(o.payload, o.recordSize)
	if err != nil {
		return err
	}
	d, err := admin.DescribeTopic(ctx, o.topic)
	if err != nil {
		return err
	}
	nparts := int32(len(d.GetPartitions()))

	if o.timeline != "" && o.window <= 0 {
		return fmt.Errorf("--timeline-window must be positive")
	}
	// Latencies go into fixed-size histograms, one per producer, written
	// before the clock starts (lathist.New): memory does not grow with
	// --records, and the callbacks recording them fault no pages in while
	// measured (a sample per record, 8 B each, made a 32-s run's client
	// 389 MB and its p99 twice a 4-s run's: docs/benchmarks.md).
	hists := make([]*lathist.Hist, o.producers)
	for i := range hists {
		hists[i] = lathist.New()
	}
	var tl *timeline
	var done, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	// Each producer first writes untimed records (warmProducer): the clock
	// starts once every connection and stream is open and every partition
	// has a leader that took it up, so the figures measure producing, not
	// the creation of a topic.
	var wg, warm sync.WaitGroup
	var warmed atomic.Int64
	starts := make([]time.Time, o.producers)
	begin := make(chan struct{})
	warm.Add(o.producers)
	for i := range o.producers {
		lo := o.records * int64(i) / int64(o.producers)
		hi := o.records * int64(i+1) / int64(o.producers)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, p, err := warmProducer(ctx, o, acks, nparts, values[0], int32(lo%int64(nparts)))
			warm.Done()
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			defer c.Close()
			defer func() { _ = p.Close() }()
			<-begin
			perProducer := o.rate / float64(o.producers)
			// The warm-up: records like the measured ones (from slabs too),
			// unmeasured.
			wrecs := newSlabs(func(*client.Record, error) {})
			wstart := time.Now()
			for k := 0; o.warmup > 0; k++ {
				now := monoNow(wstart)
				if now.Sub(wstart) >= o.warmup {
					break
				}
				pace(now, wstart, int64(k), perProducer, o.paceStep)
				r, promise := wrecs.next()
				*r = client.Record{Topic: o.topic, Partition: int32((lo + int64(k)) % int64(nparts)), Value: values[k%len(values)], Timestamp: now}
				if err := p.Produce(ctx, r, promise); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				warmed.Add(1)
			}
			pstart := time.Now()
			starts[i] = pstart
			// One promise per slab of records, the slabs reused: the load
			// generator's own garbage is not what is measured (without a
			// closure and a Record per record the bench client's CPU time
			// fell 15 %: docs/benchmarks.md). A record's Timestamp is its
			// send time.
			h := hists[i]
			recs := newSlabs(func(r *client.Record, err error) {
				done.Add(1)
				d := time.Since(r.Timestamp)
				h.Record(d)
				if tl != nil {
					tl.record(r.Timestamp, d)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			})
			for j := lo; j < hi; j++ {
				// Reading the clock is not free on every VM: read it once per
				// record (the send time doubles as the record timestamp),
				// the monotonic clock alone.
				sent := monoNow(pstart)
				if pace(sent, pstart, j-lo, perProducer, o.paceStep) {
					sent = monoNow(pstart)
				}
				r, promise := recs.next()
				*r = client.Record{Topic: o.topic, Partition: int32(j % int64(nparts)), Value: values[j%int64(len(values))], Timestamp: sent}
				if err := p.Produce(ctx, r, promise); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
			if err := p.Flush(ctx); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	warm.Wait()
	go progress(cmd.ErrOrStderr(), "produced", o.records, &done, stop)
	// Every producer's first measured record is sent at or after ref (each
	// warms up for o.warmup from when begin closes).
	ref := time.Now().Add(o.warmup)
	if o.timeline != "" {
		tl = newTimeline(ref, o.window, o.records, o.rate)
	}
	close(begin)
	wg.Wait()
	end := time.Now()
	close(stop)
	// The clock runs from the first producer's first measured record.
	start := end
	for _, t := range starts {
		if !t.IsZero() && t.Before(start) {
			start = t
		}
	}
	elapsed := end.Sub(start)
	if o.warmup > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "warm-up: %d records in %s before the measured ones\n", warmed.Load(), o.warmup)
	}
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("%d records failed: %w", failed.Load(), e.(error))
	}
	if tl != nil {
		if err := os.WriteFile(o.timeline, tl.tsv(), 0o644); err != nil {
			return err
		}
	}
	lat := hists[0]
	for _, h := range hists[1:] {
		lat.Merge(h)
	}
	report(cmd.OutOrStdout(), fmt.Sprintf("bench produce (acks=%s, producers=%d, partitions=%d)", o.acks, o.producers, nparts),
		o.records, o.recordSize, elapsed, lat, "ack")
	return nil
}

// monoNow is the time now as base plus the time since base, read from the
// monotonic clock only: time.Now reads the wall clock as well, and at
// 1,247,504 records/s of 100 B the bench client's time.Now per record was
// 11 % of its CPU (docs/benchmarks.md, seventeenth session). The wall
// reading it carries is base's advanced by the monotonic clock.
func monoNow(base time.Time) time.Time { return base.Add(time.Since(base)) }

// pace sleeps until record k of a producer that started at start is due
// at rate records/s, now being the time, unless it is due within step
// (then it goes at once, a little early); it reports whether it slept (a
// rate of 0, or a record already late, does not wait).
func pace(now, start time.Time, k int64, rate float64, step time.Duration) bool {
	if rate <= 0 {
		return false
	}
	d := start.Add(time.Duration(float64(k) / rate * float64(time.Second))).Sub(now)
	if d <= 0 || d < step {
		return false
	}
	time.Sleep(d)
	return true
}

// createTopic creates topic with partitions unless it exists already.
func createTopic(ctx context.Context, c *client.Client, topic string, partitions int32) error {
	if _, err := c.CreateTopic(ctx, topic, partitions, nil); err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// warmProducer connects a client and its bench producer, and produces
// untimed records first: one to every partition of the topic (each then
// has a leader that took it up), and one through the producer itself (to
// partition first), so that its stream is open and its metadata cached.
func warmProducer(ctx context.Context, o *benchOptions, acks stratav1.Acks, nparts int32, value []byte, first int32) (*client.Client, *client.Producer, error) {
	c, err := newClient(o.broker)
	if err != nil {
		return nil, nil, err
	}
	w := c.NewProducer(client.ProducerConfig{Acks: acks, ManualPartitions: true})
	recs := make([]*client.Record, nparts)
	for i := range recs {
		recs[i] = &client.Record{Topic: o.topic, Partition: int32(i), Value: value}
	}
	err = w.ProduceSync(ctx, recs...)
	_ = w.Close()
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("warm-up: %w", err)
	}
	p := c.NewProducer(client.ProducerConfig{Acks: acks, Linger: o.linger, BatchBytes: o.batchBytes, MaxInFlightBytes: o.inFlight, ManualPartitions: o.roundRobin})
	if err := p.ProduceSync(ctx, &client.Record{Topic: o.topic, Partition: first, Value: value}); err != nil {
		_ = p.Close()
		c.Close()
		return nil, nil, fmt.Errorf("warm-up: %w", err)
	}
	return c, p, nil
}

func runBenchConsume(cmd *cobra.Command, o *benchOptions) error {
	if o.records <= 0 {
		return fmt.Errorf("--records must be positive")
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	c, err := newClient(o.broker)
	if err != nil {
		return err
	}
	defer c.Close()
	d, err := c.DescribeTopic(ctx, o.topic)
	if err != nil {
		return err
	}
	var done, bytes atomic.Int64
	var mu sync.Mutex
	lat := lathist.New()
	var firstErr error
	stop := make(chan struct{})
	go progress(cmd.ErrOrStderr(), "consumed", o.records, &done, stop)
	start := time.Now()
	var wg sync.WaitGroup
	for _, part := range d.GetPartitions() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc := c.ConsumePartition(o.topic, part.GetPartition(), client.Earliest(), client.ConsumerConfig{MaxBytes: 4 << 20})
			defer pc.Close()
			for done.Load() < o.records {
				t := time.Now()
				recs, err := pc.Poll(ctx)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						cancel()
					}
					return
				}
				lat.Record(time.Since(t))
				for _, r := range recs {
					bytes.Add(int64(len(r.Value)))
				}
				if done.Add(int64(len(recs))) >= o.records {
					cancel()
				}
				if len(recs) == 0 && pc.Position() >= pc.HighWatermark() && done.Load() < o.records {
					// This partition is drained; the others may hold the rest.
					continue
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	if firstErr != nil {
		return firstErr
	}
	n := min(done.Load(), o.records)
	if n < o.records {
		return fmt.Errorf("consumed %d of %d records before being interrupted", n, o.records)
	}
	size := 0
	if done.Load() > 0 {
		size = int(bytes.Load() / done.Load())
	}
	report(cmd.OutOrStdout(), fmt.Sprintf("bench consume (partitions=%d)", len(d.GetPartitions())), n, size, elapsed, lat, "poll")
	return nil
}
