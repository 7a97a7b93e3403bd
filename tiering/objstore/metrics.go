package objstore

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics of an Instrumented store, by
// operation (put, get, get_range, stat, list, delete).
type Metrics struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the object-store metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_objstore_requests_total", Help: "Object-store requests, by operation.",
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_objstore_errors_total", Help: "Failed object-store requests, by operation and class (not_exist, slow_down, unavailable, other).",
		}, []string{"op", "class"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_objstore_bytes_total", Help: "Bytes written (put) or read (get, get_range).",
		}, []string{"op"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strata_objstore_latency_seconds", Help: "Object-store request latency, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"op"}),
	}
	reg.MustRegister(m.requests, m.errors, m.bytes, m.latency)
	return m
}

// Instrumented wraps a Store with metrics.
type Instrumented struct {
	s   Store
	m   *Metrics
	now func() time.Time
}

// Instrument returns s reporting to m.
func Instrument(s Store, m *Metrics) *Instrumented {
	return &Instrumented{s: s, m: m, now: time.Now}
}

func (i *Instrumented) observe(op string, start time.Time, n int, err error) {
	i.m.requests.WithLabelValues(op).Inc()
	i.m.latency.WithLabelValues(op).Observe(i.now().Sub(start).Seconds())
	if n > 0 {
		i.m.bytes.WithLabelValues(op).Add(float64(n))
	}
	if err != nil {
		class := "other"
		switch {
		case errors.Is(err, ErrNotExist):
			class = "not_exist"
		case errors.Is(err, ErrSlowDown):
			class = "slow_down"
		case errors.Is(err, ErrUnavailable):
			class = "unavailable"
		}
		i.m.errors.WithLabelValues(op, class).Inc()
	}
}

func (i *Instrumented) Put(ctx context.Context, key string, data []byte) error {
	start := i.now()
	err := i.s.Put(ctx, key, data)
	n := 0
	if err == nil {
		n = len(data)
	}
	i.observe("put", start, n, err)
	return err
}

func (i *Instrumented) Get(ctx context.Context, key string) ([]byte, error) {
	start := i.now()
	b, err := i.s.Get(ctx, key)
	i.observe("get", start, len(b), err)
	return b, err
}

func (i *Instrumented) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	start := i.now()
	b, err := i.s.GetRange(ctx, key, off, length)
	i.observe("get_range", start, len(b), err)
	return b, err
}

func (i *Instrumented) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	start := i.now()
	info, err := i.s.Stat(ctx, key)
	i.observe("stat", start, 0, err)
	return info, err
}

func (i *Instrumented) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	start := i.now()
	err := i.s.List(ctx, prefix, fn)
	i.observe("list", start, 0, err)
	return err
}

func (i *Instrumented) Delete(ctx context.Context, key string) error {
	start := i.now()
	err := i.s.Delete(ctx, key)
	i.observe("delete", start, 0, err)
	return err
}
