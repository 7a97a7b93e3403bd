package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/strata-stream/strata/broker"
	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/segment"
	"github.com/strata-stream/strata/tiering"
	"github.com/strata-stream/strata/tiering/objstore"
)

type serveOptions struct {
	dataDir       string
	listen        string
	httpListen    string
	advertise     string
	etcdEndpoints []string
	objectStore   string
	cluster       string
	brokerID      int32
	syncPolicy    string
	schedSlice    string
	logLevel      string
	logFormat     string
	cacheDir      string
	cacheSize     string
	pageWindow    string
	diskLimit     string
	sessionTTL    time.Duration
	reconcile     time.Duration
	wal           string
	walInterval   time.Duration
	walBytes      string
	groups        broker.GroupConfig
	workers       workerOptions
}

// workerOptions are the background workers' flags (retention,
// compaction, the bucket's garbage collection).
type workerOptions struct {
	retentionInterval  time.Duration
	compactionInterval time.Duration
	compactionRate     string
	gcInterval         time.Duration
	gcGrace            time.Duration
	gcMaxDeletes       int
}

// validate checks the workers' flags (before anything is opened) and
// returns the compaction rate in bytes per second.
func (w workerOptions) validate() (int64, error) {
	rate, err := parseBytes(w.compactionRate)
	if err != nil {
		return 0, fmt.Errorf("--compaction-bytes-per-sec: %w", err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--retention-check-interval", w.retentionInterval}, {"--compaction-interval", w.compactionInterval},
		{"--gc-interval", w.gcInterval}, {"--gc-grace-period", w.gcGrace}} {
		if d.v <= 0 {
			return 0, fmt.Errorf("%s %s: must be positive", d.name, d.v)
		}
	}
	if w.gcMaxDeletes <= 0 {
		return 0, fmt.Errorf("--gc-max-deletes %d: must be positive", w.gcMaxDeletes)
	}
	return rate, nil
}

func newServeCmd() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a broker (embedded etcd and a filesystem object store by default)",
		Long: `Run a Strata broker.

With no flags the broker keeps everything under ./strata-data: the partition
logs in logs/, an embedded etcd in etcd/ and the filesystem object store in
objects/. --etcd-endpoints points it at an external etcd instead.

The HTTP listener serves /metrics (Prometheus), /healthz (the process is up)
and /readyz (the broker has registered and opened its partitions). SIGTERM
or SIGINT stops it cleanly: in-flight appends finish and every log is
synced before exit.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", "./strata-data", "directory for logs, the embedded etcd and the file object store")
	f.StringVar(&o.listen, "listen", "127.0.0.1:9400", "gRPC listen address")
	f.StringVar(&o.httpListen, "http-listen", "127.0.0.1:9401", "HTTP listen address for /metrics, /healthz and /readyz (empty disables)")
	f.StringVar(&o.advertise, "advertise", "", "gRPC address clients reach this broker at (default: the listen address)")
	f.StringSliceVar(&o.etcdEndpoints, "etcd-endpoints", nil, "external etcd client URLs, comma-separated (default: embedded etcd in <data-dir>/etcd)")
	f.StringVar(&o.objectStore, "object-store", "", "object store URL: file:///path or s3://bucket/prefix?endpoint=...&region=...&path-style=true (default: file://<data-dir>/objects; none: tiered storage off)")
	f.StringVar(&o.cluster, "cluster", "strata", "cluster name: the etcd key prefix /strata/<cluster>/")
	f.Int32Var(&o.brokerID, "broker-id", 1, "this broker's id in the cluster")
	f.StringVar(&o.syncPolicy, "sync-policy", "always", "local log fsync policy: always (group fsync before acks and reads), interval, never")
	f.StringVar(&o.schedSlice, "sched-slice", "auto", "Linux 6.12+: the scheduler slice of the broker's threads, so that they run sooner when they wake on a busy machine: auto (100us where the kernel has custom slices, else its default), 0 (the kernel's default) or 100us-100ms")
	f.StringVar(&o.cacheDir, "cache-dir", "", "directory of the cold-read frame cache (default <data-dir>/cache; wiped at start)")
	f.StringVar(&o.cacheSize, "cache-size", "1GiB", "bound of the frame cache, e.g. 512MiB, 4GiB (0 disables it)")
	f.StringVar(&o.pageWindow, "page-cache-window", "256MiB", "bytes of each partition's newest local log left to the page cache: older sealed segments are dropped from it once uploaded, so that the logs do not grow into all free memory (0: drop each once uploaded; all: never drop)")
	f.DurationVar(&o.sessionTTL, "session-ttl", 6*time.Second, "etcd session lease TTL: a broker that stops renewing it loses its partitions after this long (whole seconds)")
	f.DurationVar(&o.reconcile, "reconcile-interval", time.Second, "how often the controller assigns partitions and brokers take up their assignments")
	f.StringVar(&o.diskLimit, "local-disk-limit", "0", "bound of all local logs, e.g. 100GiB; above it produce fails with UNAVAILABLE until uploads and eviction free space (0: unlimited)")
	f.StringVar(&o.wal, "wal", "auto", "object-store WAL for acks=all: on, off, or auto (on with an s3:// object store). With it acks=all waits until the records are in a WAL object in the bucket and committed in etcd, and consumers read up to that committed end")
	f.DurationVar(&o.walInterval, "wal-flush-interval", 10*time.Millisecond, "how long the WAL gathers appends of all partitions into one object (one PUT per interval)")
	f.StringVar(&o.walBytes, "wal-flush-bytes", "4MiB", "a WAL object is flushed sooner once this many bytes wait")
	f.DurationVar(&o.groups.SessionTimeout, "group-session-timeout", 10*time.Second, "session timeout of consumer group members that do not ask for one: a member without a heartbeat for this long is removed and its partitions reassigned")
	f.DurationVar(&o.groups.CommitInterval, "group-commit-interval", 100*time.Millisecond, "least time between two etcd writes of a consumer group: commits arriving meanwhile are coalesced (at most 1/interval writes per group per second)")
	f.DurationVar(&o.workers.retentionInterval, "retention-check-interval", time.Minute, "how often the leader of a partition applies retention.ms and retention.bytes")
	f.DurationVar(&o.workers.compactionInterval, "compaction-interval", 30*time.Second, "how often the leader of a partition checks whether it is due for compaction (or small-segment merging)")
	f.StringVar(&o.workers.compactionRate, "compaction-bytes-per-sec", "32MiB", "bound of the bytes compaction reads per second on this broker, e.g. 16MiB (0: unlimited)")
	f.DurationVar(&o.workers.gcInterval, "gc-interval", time.Minute, "how often the controller sweeps the bucket for garbage and orphan objects")
	f.DurationVar(&o.workers.gcGrace, "gc-grace-period", 10*time.Minute, "how long an object stays in the bucket after no manifest references it (readers of the old manifest keep working), and the age an unreferenced object must reach to count as an orphan")
	f.IntVar(&o.workers.gcMaxDeletes, "gc-max-deletes", 1000, "bound of the objects one sweep deletes")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// openObjectStore opens the --object-store URL (default: a file store
// under the data dir), where sealed segments are uploaded.
func openObjectStore(ctx context.Context, raw, dataDir string) (string, objstore.Store, error) {
	if raw == "" {
		abs, err := filepath.Abs(filepath.Join(dataDir, "objects"))
		if err != nil {
			return "", nil, err
		}
		raw = "file://" + abs
	}
	st, err := objstore.Open(ctx, raw)
	if err != nil {
		return "", nil, fmt.Errorf("--object-store: %w", err)
	}
	return raw, st, nil
}

func runServe(ctx context.Context, o *serveOptions) error {
	logger, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	slog.SetDefault(logger)
	policy, err := segment.ParseSyncPolicy(o.syncPolicy)
	if err != nil {
		return fmt.Errorf("--sync-policy: %w", err)
	}
	if err := setSchedSlice(o.schedSlice, logger); err != nil {
		return err
	}
	if o.brokerID <= 0 {
		return fmt.Errorf("--broker-id %d: must be positive", o.brokerID)
	}
	compactionRate, err := o.workers.validate()
	if err != nil {
		return err
	}
	pageWindow, err := parsePageCacheWindow(o.pageWindow)
	if err != nil {
		return fmt.Errorf("--page-cache-window: %w", err)
	}
	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	var objects objstore.Store
	objURL := "none (tiered storage off)"
	if o.objectStore != "none" {
		if objURL, objects, err = openObjectStore(ctx, o.objectStore, o.dataDir); err != nil {
			return err
		}
	}

	var walOn bool
	switch o.wal {
	case "on":
		if objects == nil {
			return errors.New("--wal on needs an object store (--object-store is none)")
		}
		walOn = true
	case "off":
	case "auto":
		walOn = strings.HasPrefix(objURL, "s3://")
	default:
		return fmt.Errorf("--wal %q: want on, off or auto", o.wal)
	}
	walBytes, err := parseBytes(o.walBytes)
	if err != nil || walBytes <= 0 {
		return fmt.Errorf("--wal-flush-bytes %q: want a positive size such as 4MiB", o.walBytes)
	}
	if o.walInterval <= 0 {
		return fmt.Errorf("--wal-flush-interval %s: must be positive", o.walInterval)
	}
	if o.groups.SessionTimeout < time.Second || o.groups.CommitInterval <= 0 {
		return fmt.Errorf("--group-session-timeout %s, --group-commit-interval %s: want at least 1s and a positive interval", o.groups.SessionTimeout, o.groups.CommitInterval)
	}

	endpoints := o.etcdEndpoints
	var emb *metadata.Embedded
	if len(endpoints) == 0 {
		dir := filepath.Join(o.dataDir, "etcd")
		logger.Info("starting embedded etcd", "dir", dir)
		// etcd logs only fatal problems: its shutdown is noisy at "error",
		// and a failure that matters reaches us through emb.Err().
		if emb, err = metadata.StartEmbedded(metadata.EmbeddedConfig{Dir: dir, LogLevel: "fatal"}); err != nil {
			return err
		}
		defer emb.Close()
		endpoints = emb.Endpoints()
	}
	cli, err := metadata.Dial(ctx, endpoints)
	if err != nil {
		return err
	}
	defer cli.Close()
	store := metadata.New(cli, o.cluster)

	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	advertise := o.advertise
	if advertise == "" {
		advertise = lis.Addr().String()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if objects != nil {
		objects = objstore.Instrument(objects, objstore.NewMetrics(reg))
	}
	cacheBytes, err := parseBytes(o.cacheSize)
	if err != nil {
		return fmt.Errorf("--cache-size: %w", err)
	}
	diskLimit, err := parseBytes(o.diskLimit)
	if err != nil {
		return fmt.Errorf("--local-disk-limit: %w", err)
	}
	var readerCfg tiering.ReaderConfig
	if cacheBytes > 0 {
		dir := o.cacheDir
		if dir == "" {
			dir = filepath.Join(o.dataDir, "cache")
		}
		if readerCfg.Cache, err = tiering.NewFrameCache(dir, cacheBytes); err != nil {
			return err
		}
	}
	srv := broker.New(broker.Config{
		Objects:               objects,
		Reader:                readerCfg,
		LocalDiskLimit:        diskLimit,
		PageCacheWindow:       pageWindow,
		SessionTTL:            o.sessionTTL,
		ReconcileInterval:     o.reconcile,
		DataDir:               o.dataDir,
		BrokerID:              o.brokerID,
		Advertise:             advertise,
		SyncPolicy:            policy,
		WAL:                   walOn,
		WALFlushInterval:      o.walInterval,
		WALFlushBytes:         int(walBytes),
		RetentionInterval:     o.workers.retentionInterval,
		CompactionInterval:    o.workers.compactionInterval,
		CompactionBytesPerSec: compactionRate,
		GCInterval:            o.workers.gcInterval,
		GCGrace:               o.workers.gcGrace,
		GCMaxDeletes:          o.workers.gcMaxDeletes,
		Groups:                o.groups,
		Logger:                logger,
	}, store, broker.NewMetrics(reg))
	// The health service follows the broker's readiness.
	g, _ := srv.NewGRPCServer()

	var httpSrv *http.Server
	if o.httpListen != "" {
		hl, err := net.Listen("tcp", o.httpListen)
		if err != nil {
			lis.Close()
			return fmt.Errorf("--http-listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		// Profiles for performance work (the listener is loopback by default).
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !srv.Ready() {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ready")
		})
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := httpSrv.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("http server", "err", err)
			}
		}()
	}

	runCtx, cancelRun := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- srv.Run(runCtx) }()
	grpcDone := make(chan error, 1)
	go func() { grpcDone <- g.Serve(lis) }()
	logger.Info("strata broker started", "listen", lis.Addr().String(), "http", o.httpListen,
		"data_dir", o.dataDir, "etcd", strings.Join(endpoints, ","), "embedded_etcd", emb != nil,
		"object_store", objURL, "sync_policy", policy.String(), "wal", walOn, "broker_id", o.brokerID)

	var embErr <-chan error
	if emb != nil {
		embErr = emb.Err()
	}
	var failure error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-grpcDone:
		failure = fmt.Errorf("grpc server: %w", err)
	case err := <-embErr:
		failure = fmt.Errorf("embedded etcd: %w", err)
	}
	// Clean shutdown: stop accepting, let in-flight requests (and their
	// acknowledgements) finish, then close and sync every log.
	if !srv.StopGRPC(g, 10*time.Second) {
		logger.Warn("in-flight requests did not finish within 10s; they were cut")
	}
	cancelRun()
	if err := <-runDone; err != nil && failure == nil {
		failure = err
	}
	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = httpSrv.Shutdown(sctx)
		cancel()
	}
	if failure == nil {
		logger.Info("stopped cleanly")
	}
	return failure
}

// parsePageCacheWindow parses --page-cache-window into
// broker.Config.PageCacheWindow: "all" never drops (-1), 0 drops each
// uploaded segment as soon as a newer one has data (a window of 1 byte).
func parsePageCacheWindow(v string) (int64, error) {
	if strings.TrimSpace(v) == "all" {
		return -1, nil
	}
	n, err := parseBytes(v)
	if err != nil {
		return 0, fmt.Errorf("%w, or all", err)
	}
	return max(n, 1), nil
}

// parseBytes parses a size: a number of bytes with an optional unit (B,
// KB, MB, GB, TB in powers of 1000; KiB, MiB, GiB, TiB in powers of 1024).
func parseBytes(v string) (int64, error) {
	v = strings.TrimSpace(v)
	i := strings.IndexFunc(v, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := v, ""
	if i >= 0 {
		num, unit = v[:i], strings.TrimSpace(v[i:])
	}
	mult := map[string]float64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[unit]
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || n < 0 || n*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("%q: want a size such as 512MiB or 4GiB", v)
	}
	return int64(n * mult), nil
}
