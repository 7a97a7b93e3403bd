package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/broker"
	"github.com/strata-stream/strata/client"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
	"github.com/strata-stream/strata/segment"
)

type floorOptions struct {
	*benchOptions // --broker, --topic and --record-size
	against       string
	rate          float64
	requestBytes  string
	duration      time.Duration
	warmup        time.Duration
	dir           string
	fsync         bool
}

// newBenchFloorCmd is `strata bench floor`: the latency floor of this
// machine under a produce round trip, without Strata's client or broker.
func newBenchFloorCmd(b *benchOptions) *cobra.Command {
	o := &floorOptions{benchOptions: b}
	cmd := &cobra.Command{
		Use:   "floor",
		Short: "Measure the round-trip floor under produce latency: one gRPC stream to a minimal server that appends and fdatasyncs",
		Long: `Sends --rate requests/s of --request-bytes each on one ProduceStream, for
--duration after an unmeasured --warmup, and reports the time from each
send to its acknowledgement.

With --against minimal (the default) the other end is a minimal server
started as a separate process: it writes each request's bytes to a file
in a temporary directory under --dir and acknowledges once a group
fdatasync covers them (one fdatasync for every request that arrived while
the previous one ran, files rolled every 64 MiB), or at once with
--fsync=false. That is the part of an acks=leader acknowledgement no
broker implementation can avoid on this machine: the gRPC transport of
the same settings as Strata's, two busy processes on its CPUs, and the
disk's group commit.

With --against broker the requests carry real record batches of
--record-size records (acks=leader, partition 0 of --topic, created with
one partition when missing; one record is written to it first, through
the client) to the Strata broker at --broker, which must lead it:
Strata's broker without Strata's client library.

A request stands for the records that a producer batched while it
filled, so the report also gives a record latency: the request's plus a
wait spread evenly over the 1/rate before it was sent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("broker") && o.against != "broker" {
				return fmt.Errorf("--broker is used with --against broker only")
			}
			return runBenchFloor(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.against, "against", "minimal", "what answers: minimal (a server of this command, started as a process) or broker (the Strata broker at --broker)")
	f.Float64Var(&o.rate, "rate", 1000, "requests per second")
	f.StringVar(&o.requestBytes, "request-bytes", "64KiB", "bytes of records per request")
	f.DurationVar(&o.duration, "duration", 5*time.Second, "how long to measure")
	f.DurationVar(&o.warmup, "warmup", time.Second, "send at --rate this long first, unmeasured")
	f.StringVar(&o.dir, "dir", "./strata-data", "directory on the disk the minimal server writes to (a temporary directory is made in it and removed)")
	f.BoolVar(&o.fsync, "fsync", true, "the minimal server fdatasyncs before acknowledging")
	// --broker, --topic and --record-size (with --against broker) are
	// bench's own flags.
	return cmd
}

// newBenchFloorServerCmd is the minimal server of `strata bench floor`,
// run by it as a child process: it prints "listening ADDR" once it
// listens, and ends when its stdin closes.
func newBenchFloorServerCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "floor-server",
		Short:  "The minimal server of bench floor (started by it)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv := floorServer{}
			if dir != "" {
				tmp, err := os.MkdirTemp(dir, "bench-floor-")
				if err != nil {
					return err
				}
				defer func() { _ = os.RemoveAll(tmp) }()
				srv.dir = tmp
			}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			// The broker's transport settings: the same transport is measured.
			g := grpc.NewServer(broker.TransportOptions()...)
			stratav1.RegisterProduceServiceServer(g, srv)
			fmt.Fprintf(cmd.OutOrStdout(), "listening %s\n", lis.Addr())
			go func() {
				_, _ = io.Copy(io.Discard, cmd.InOrStdin())
				// Streams end when the parent's connection does.
				g.GracefulStop()
			}()
			return g.Serve(lis)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "write and fdatasync in a temporary directory here before acknowledging (empty: acknowledge at once)")
	return cmd
}

// floorServer acknowledges each request of a produce stream, after a group
// fdatasync covering it when dir is set.
type floorServer struct {
	stratav1.UnimplementedProduceServiceServer
	dir string
}

func (s floorServer) ProduceStream(st stratav1.ProduceService_ProduceStreamServer) error {
	if s.dir == "" {
		for {
			r, err := st.Recv()
			if err != nil {
				return nil
			}
			if err := st.Send(&stratav1.ProduceResponse{RequestId: r.GetRequestId()}); err != nil {
				return err
			}
		}
	}
	dir, err := os.MkdirTemp(s.dir, "stream-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	l := &floorLog{dir: dir}
	l.cond = sync.NewCond(&l.mu)
	if err := l.roll(); err != nil {
		return err
	}
	acked := make(chan error, 1)
	go func() { acked <- l.syncAndAck(st) }()
	var recvErr error
	for {
		r, err := st.Recv()
		if err != nil {
			break
		}
		var b []byte
		for _, p := range r.GetPartitions() {
			b = append(b, p.GetRecords()...)
		}
		if recvErr = l.append(r.GetRequestId(), b); recvErr != nil {
			break
		}
	}
	l.mu.Lock()
	l.stop = true
	l.cond.Signal()
	l.mu.Unlock()
	err = <-acked
	_ = l.f.Close()
	return errors.Join(recvErr, err)
}

// floorLog is the minimal server's log: appends from the receiving
// goroutine, one syncer that fdatasyncs and acknowledges.
type floorLog struct {
	dir     string
	mu      sync.Mutex
	cond    *sync.Cond
	f       *os.File
	files   int
	pos     int64
	written int64 // bytes appended over all files
	queue   []floorPending
	stop    bool
}

type floorPending struct {
	id  uint64
	end int64 // written once the request's bytes were appended
}

func (l *floorLog) roll() error {
	if l.f != nil {
		// The old file's tail is fsynced before the next one is written
		// (under the lock: appends wait, as the simplest log would).
		if err := l.f.Sync(); err != nil {
			return err
		}
		go func(f *os.File) { _ = f.Close() }(l.f)
	}
	l.files++
	f, err := os.OpenFile(filepath.Join(l.dir, fmt.Sprintf("%08d.log", l.files)), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	l.f, l.pos = f, 0
	return nil
}

func (l *floorLog) append(id uint64, b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pos > 0 && l.pos+int64(len(b)) > 64<<20 {
		if err := l.roll(); err != nil {
			return err
		}
	}
	if _, err := l.f.WriteAt(b, l.pos); err != nil {
		return err
	}
	l.pos += int64(len(b))
	l.written += int64(len(b))
	l.queue = append(l.queue, floorPending{id, l.written})
	l.cond.Signal()
	return nil
}

// syncAndAck fdatasyncs whatever was appended since the last fdatasync and
// acknowledges the requests it covered, until stop.
func (l *floorLog) syncAndAck(st stratav1.ProduceService_ProduceStreamServer) error {
	var synced int64
	for {
		l.mu.Lock()
		for l.written == synced && !l.stop {
			l.cond.Wait()
		}
		if l.written == synced {
			l.mu.Unlock()
			return nil
		}
		target, f := l.written, l.f
		l.mu.Unlock()
		if err := f.Sync(); err != nil {
			return err
		}
		synced = target
		l.mu.Lock()
		n := 0
		for n < len(l.queue) && l.queue[n].end <= synced {
			n++
		}
		ready := slices.Clone(l.queue[:n])
		l.queue = l.queue[n:]
		l.mu.Unlock()
		for _, p := range ready {
			if err := st.Send(&stratav1.ProduceResponse{RequestId: p.id}); err != nil {
				return err
			}
		}
	}
}

func runBenchFloor(ctx context.Context, out io.Writer, o *floorOptions) error {
	size, err := parseBytes(o.requestBytes)
	if err != nil || size < 1 || size > 16<<20 {
		return fmt.Errorf("--request-bytes %q: want a size from 1B to 16MiB", o.requestBytes)
	}
	switch {
	case o.rate <= 0:
		return fmt.Errorf("--rate %v: must be positive", o.rate)
	case o.duration <= 0:
		return fmt.Errorf("--duration %s: must be positive", o.duration)
	case o.warmup < 0:
		return fmt.Errorf("--warmup %s: must not be negative", o.warmup)
	case o.against != "minimal" && o.against != "broker":
		return fmt.Errorf("--against %q: want minimal or broker", o.against)
	case o.against == "broker" && o.recordSize < 1:
		return fmt.Errorf("--record-size %d: must be positive", o.recordSize)
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	addr, what := o.broker, ""
	topic, acks := "floor", stratav1.Acks_ACKS_UNSPECIFIED
	if o.against == "minimal" {
		srv, err := startFloorServer(o)
		if err != nil {
			return err
		}
		defer srv.stop()
		addr = srv.addr
		what = "minimal server: gRPC, write, no fdatasync"
		if o.fsync {
			what = "minimal server: gRPC, write, group fdatasync in " + o.dir
		}
	} else {
		var records int
		payload, records = floorBatch(payload, o.recordSize)
		if err := readyTopic(ctx, addr, o.topic); err != nil {
			return err
		}
		topic, acks = o.topic, stratav1.Acks_ACKS_LEADER
		what = fmt.Sprintf("Strata broker at %s: batches of %d records of %d B, acks=leader", addr, records, o.recordSize)
	}
	cc, err := client.Dial(addr)
	if err != nil {
		return err
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := stratav1.NewProduceServiceClient(cc).ProduceStream(ctx)
	if err != nil {
		return fmt.Errorf("open produce stream to %s: %w", addr, err)
	}
	warm := int(o.rate * o.warmup.Seconds())
	n := warm + max(1, int(o.rate*o.duration.Seconds()))
	sent, lat := make([]time.Time, n), touched(n)[:n]
	recvErr := make(chan error, 1)
	go func() {
		for range n {
			r, err := st.Recv()
			if err != nil {
				recvErr <- fmt.Errorf("acknowledgement: %w", err)
				return
			}
			for _, p := range r.GetPartitions() {
				if e := p.GetError(); e != nil {
					recvErr <- status.Error(codes.Code(e.GetCode()), e.GetMessage())
					return
				}
			}
			id := r.GetRequestId()
			if id >= uint64(n) {
				recvErr <- fmt.Errorf("acknowledgement of unknown request %d", id)
				return
			}
			lat[id] = time.Since(sent[id])
		}
		recvErr <- nil
	}()
	req := &stratav1.ProduceRequest{Acks: acks, Partitions: []*stratav1.PartitionRecords{{Topic: topic, Records: payload}}}
	start := time.Now()
	for i := range n {
		pace(time.Now(), start, int64(i), o.rate, 0)
		sent[i] = time.Now()
		req.RequestId = uint64(i)
		if err := st.Send(req); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	if err := <-recvErr; err != nil {
		return err
	}
	_ = st.CloseSend()
	measured := slices.Clone(lat[warm:])
	elapsed := time.Since(sent[warm])
	// A request stands for the records batched while it filled: spread
	// over the 1/rate before its send, 16 samples each.
	fill := time.Duration(float64(time.Second) / o.rate)
	records := make([]time.Duration, 0, 16*len(measured))
	for _, d := range measured {
		for k := range 16 {
			records = append(records, d+fill*time.Duration(k)/16)
		}
	}
	slices.Sort(measured)
	slices.Sort(records)
	fmt.Fprintf(out, "bench floor (%s): %d requests of %d B at %.0f/s in %s (%.1f MB/s), after %d unmeasured\n",
		what, len(measured), len(payload), o.rate, elapsed.Round(time.Millisecond), float64(len(measured)*len(payload))/1e6/elapsed.Seconds(), warm)
	fmt.Fprintf(out, "request latency: %s\n", percentiles(measured))
	fmt.Fprintf(out, "record latency (with the wait in a batch filling for %s): p50 %s, p99 %s\n",
		fill.Round(time.Microsecond), fmtDur(percentile(records, 0.50)), fmtDur(percentile(records, 0.99)))
	return nil
}

// floorBatch returns one record batch of records of recordSize bytes,
// about as large as payload (at least one record), and its record count.
func floorBatch(payload []byte, recordSize int) ([]byte, int) {
	value := make([]byte, recordSize)
	for i := range value {
		value[i] = payload[i%len(payload)]
	}
	var recs []segment.Record
	now := time.Now().UnixMilli()
	// A record's framing is about 8 bytes besides its value.
	for len(recs) == 0 || (len(recs)+1)*(recordSize+8) <= len(payload) {
		recs = append(recs, segment.Record{Timestamp: now, Value: value})
	}
	return segment.AppendBatch(nil, segment.NoProducer, recs), len(recs)
}

// readyTopic creates topic with one partition when it is missing, and
// writes one record to partition 0 through the client (which waits for a
// leader and retries), so that the measured requests find it led.
func readyTopic(ctx context.Context, addr, topic string) error {
	c, err := newClient(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := createTopic(ctx, c, topic, 1); err != nil {
		return err
	}
	p := c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_LEADER, ManualPartitions: true})
	defer func() { _ = p.Close() }()
	if err := p.ProduceSync(ctx, &client.Record{Topic: topic, Partition: 0, Value: []byte("bench floor")}); err != nil {
		return fmt.Errorf("warm-up record to %s: %w", topic, err)
	}
	return nil
}

// floorProcess is the minimal server running as a child process.
type floorProcess struct {
	cmd   *exec.Cmd
	stdin io.Closer
	addr  string
}

func startFloorServer(o *floorOptions) (*floorProcess, error) {
	args := []string{"bench", "floor-server"}
	if o.fsync {
		if err := os.MkdirAll(o.dir, 0o755); err != nil {
			return nil, err
		}
		args = append(args, "--dir", o.dir)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	// The child must not take this process's STRATA_* settings (such as
	// a config file) for its own flags.
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "STRATA_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the minimal server: %w", err)
	}
	p := &floorProcess{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		p.stop()
		return nil, fmt.Errorf("the minimal server did not start: %q %v", line, err)
	}
	p.addr = addr
	return p, nil
}

// stop ends the minimal server: closing its stdin stops it; it is killed
// if it has not exited within 10 s.
func (p *floorProcess) stop() {
	_ = p.stdin.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
