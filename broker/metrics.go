package broker

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the broker's Prometheus metrics.
type Metrics struct {
	produceRequests *prometheus.CounterVec
	produceLatency  *prometheus.HistogramVec
	fetchRequests   prometheus.Counter
	fetchLatency    prometheus.Histogram
	bytesIn         *prometheus.CounterVec
	bytesOut        *prometheus.CounterVec
	logFsync        prometheus.Histogram
	reg             prometheus.Registerer

	uploadedObjects  *prometheus.CounterVec
	uploadedBytes    *prometheus.CounterVec
	uploadedRawBytes *prometheus.CounterVec
	uploadRetries    prometheus.Counter
	remoteReadBytes  *prometheus.CounterVec

	walObjects       prometheus.Counter
	walBytes         prometheus.Counter
	walPutLatency    prometheus.Histogram
	walCommitLatency prometheus.Histogram
	walDeleted       prometheus.Counter

	retentionSegments *prometheus.CounterVec
	retentionBytes    *prometheus.CounterVec
	compactionRuns    *prometheus.CounterVec
	compactionRead    prometheus.Counter
	compactionWritten prometheus.Counter
	compactionRemoved *prometheus.CounterVec
	gcDeleted         *prometheus.CounterVec
	gcOrphanBytes     prometheus.Counter

	groups *groupMetrics
}

// NewMetrics registers the broker's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		produceRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_produce_requests_total", Help: "Produce requests answered, by outcome (ok or the first partition error's gRPC code).",
		}, []string{"code"}),
		produceLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strata_produce_latency_seconds", Help: "Time from receiving a produce request to acknowledging it, by acks.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"acks"}),
		fetchRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_fetch_responses_total", Help: "Consume responses sent.",
		}),
		fetchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_fetch_latency_seconds", Help: "Time to assemble a consume response, long-poll wait included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		logFsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_log_fsync_seconds", Help: "Duration of each group-commit fsync of a partition's active segment: what an acks=leader produce under --sync-policy always waits for (with the fsync already running when it arrived).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_bytes_in_total", Help: "Record batch bytes appended, by topic.",
		}, []string{"topic"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_bytes_out_total", Help: "Record batch bytes sent to consumers, by topic.",
		}, []string{"topic"}),
		reg: reg,
		uploadedObjects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_tier_uploaded_objects_total", Help: "Sealed segment objects uploaded, by topic.",
		}, []string{"topic"}),
		uploadedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_tier_uploaded_bytes_total", Help: "Object bytes uploaded, by topic.",
		}, []string{"topic"}),
		uploadedRawBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_tier_uploaded_raw_bytes_total", Help: "Record batch bytes uploaded (before compression), by topic; divided by strata_tier_uploaded_bytes_total it is the compression ratio.",
		}, []string{"topic"}),
		uploadRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_tier_upload_retries_total", Help: "Upload attempts that failed and were retried.",
		}),
		remoteReadBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_tier_remote_read_bytes_total", Help: "Record batch bytes read from the object store for consumers, by topic.",
		}, []string{"topic"}),
		walObjects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_wal_objects_total", Help: "WAL objects written (one PUT each).",
		}),
		walBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_wal_bytes_total", Help: "Bytes of WAL objects written.",
		}),
		walPutLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_wal_put_latency_seconds", Help: "Time to PUT a WAL object, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		walCommitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_wal_commit_latency_seconds", Help: "Time to commit a WAL object's sections in etcd.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		walDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_wal_objects_deleted_total", Help: "WAL objects garbage-collected once sealed segments covered them.",
		}),
		retentionSegments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_retention_deleted_segments_total", Help: "Segments retention (retention.ms, retention.bytes) expired, by topic: uploaded objects, or local segments without an object store.",
		}, []string{"topic"}),
		retentionBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_retention_deleted_bytes_total", Help: "Object bytes retention expired, by topic (deleted from the bucket after the grace period).",
		}, []string{"topic"}),
		compactionRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_compaction_runs_total", Help: "Compaction and merge runs, by topic and outcome (ok, error).",
		}, []string{"topic", "outcome"}),
		compactionRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_compaction_read_bytes_total", Help: "Record batch bytes compaction read (paced by --compaction-bytes-per-sec).",
		}),
		compactionWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_compaction_written_bytes_total", Help: "Record batch bytes of the objects compaction wrote.",
		}),
		compactionRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_compaction_records_removed_total", Help: "Records compaction removed (superseded, or tombstones past delete.retention.ms), by topic.",
		}, []string{"topic"}),
		gcDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_gc_deleted_objects_total", Help: "Objects the bucket sweep deleted: garbage (replaced or expired, after the grace period) and orphan (no manifest entry or WAL record, older than the grace period).",
		}, []string{"kind"}),
		gcOrphanBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_gc_orphan_bytes_total", Help: "Bytes of the orphan objects the bucket sweep deleted.",
		}),
	}
	reg.MustRegister(m.produceRequests, m.produceLatency, m.fetchRequests, m.fetchLatency, m.bytesIn, m.bytesOut, m.logFsync,
		m.uploadedObjects, m.uploadedBytes, m.uploadedRawBytes, m.uploadRetries, m.remoteReadBytes,
		m.walObjects, m.walBytes, m.walPutLatency, m.walCommitLatency, m.walDeleted,
		m.retentionSegments, m.retentionBytes, m.compactionRuns, m.compactionRead, m.compactionWritten, m.compactionRemoved,
		m.gcDeleted, m.gcOrphanBytes)
	m.groups = newGroupMetrics(reg)
	return m
}

func (m *Metrics) bindServer(s *Server) {
	m.reg.MustRegister(&offsetCollector{s: s}, &groupCollector{c: s.groups})
}

// offsetCollector reports each led partition's log offsets at scrape time.
type offsetCollector struct{ s *Server }

var (
	logEndDesc     = prometheus.NewDesc("strata_log_end_offset", "Offset after the last readable record, per partition led here.", []string{"topic", "partition"}, nil)
	lagBytesDesc   = prometheus.NewDesc("strata_tier_upload_lag_bytes", "Local bytes not uploaded yet (the active segment included), per partition led here.", []string{"topic", "partition"}, nil)
	lagSecondsDesc = prometheus.NewDesc("strata_tier_upload_lag_seconds", "Age of the oldest sealed segment waiting for upload, per partition led here.", []string{"topic", "partition"}, nil)
	logStartDesc   = prometheus.NewDesc("strata_log_start_offset", "The log start offset (local or uploaded; only retention moves it), per partition led here.", []string{"topic", "partition"}, nil)
	dirtyDesc      = prometheus.NewDesc("strata_compaction_dirty_ratio", "Uploaded bytes not compacted yet / all uploaded bytes, per compacted partition led here.", []string{"topic", "partition"}, nil)
	lastRunDesc    = prometheus.NewDesc("strata_compaction_last_run_timestamp_seconds", "When the last compaction run of the partition ended (0: never), per compacted partition led here.", []string{"topic", "partition"}, nil)
)

func (c *offsetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- logEndDesc
	ch <- logStartDesc
	ch <- lagBytesDesc
	ch <- lagSecondsDesc
	ch <- dirtyDesc
	ch <- lastRunDesc
}

func (c *offsetCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.s.allPartitions() {
		start, end := p.offsets()
		pl := strconv.Itoa(int(p.id))
		ch <- prometheus.MustNewConstMetric(logEndDesc, prometheus.GaugeValue, float64(end), p.topic, pl)
		ch <- prometheus.MustNewConstMetric(logStartDesc, prometheus.GaugeValue, float64(start), p.topic, pl)
		if p.remoteRead != nil {
			ts := p.tierStatus(c.s.cfg.Now())
			ch <- prometheus.MustNewConstMetric(lagBytesDesc, prometheus.GaugeValue, float64(ts.GetUploadLagBytes()), p.topic, pl)
			ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, float64(ts.GetUploadLagMs())/1000, p.topic, pl)
			if p.config.Load().Compacted() {
				cs := p.compactionStatus()
				ch <- prometheus.MustNewConstMetric(dirtyDesc, prometheus.GaugeValue, cs.GetDirtyRatio(), p.topic, pl)
				ch <- prometheus.MustNewConstMetric(lastRunDesc, prometheus.GaugeValue, float64(cs.GetLastRunMs())/1000, p.topic, pl)
			}
		}
	}
}

// observeFsync records one group-commit fsync of a partition's log; a nil
// m records nothing.
func (m *Metrics) observeFsync(d time.Duration) {
	if m != nil {
		m.logFsync.Observe(d.Seconds())
	}
}
