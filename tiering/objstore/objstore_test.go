package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-stream/strata/internal/miniotest"
	"github.com/strata-stream/strata/tiering/objstore"
	"github.com/strata-stream/strata/tiering/objstore/objstoretest"
)

func TestMemConformance(t *testing.T) {
	objstoretest.Run(t, func(*testing.T) objstore.Store { return objstore.NewMem() })
}

func TestFileConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		s, err := objstore.NewFile(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

var bucketSeq atomic.Int64

func newS3(t *testing.T, m *miniotest.Server, prefix string) *objstore.S3 {
	t.Helper()
	bucket := fmt.Sprintf("conf-%d", bucketSeq.Add(1))
	m.MakeBucket(t, bucket)
	s, err := objstore.NewS3(context.Background(), objstore.S3Config{
		Bucket: bucket, Prefix: prefix, Endpoint: m.Endpoint(), Region: "us-east-1", PathStyle: true,
		AccessKey: miniotest.AccessKey, SecretKey: miniotest.SecretKey, MaxAttempts: 1,
		PartSize: 8 << 20, // the suite's 21 MiB object goes up in 3 parts
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestS3Conformance runs the suite against a real MinIO server, with and
// without a key prefix.
func TestS3Conformance(t *testing.T) {
	m := miniotest.Start(t)
	t.Run("NoPrefix", func(t *testing.T) {
		objstoretest.Run(t, func(t *testing.T) objstore.Store { return newS3(t, m, "") })
	})
	t.Run("Prefix", func(t *testing.T) {
		objstoretest.Run(t, func(t *testing.T) objstore.Store { return newS3(t, m, "cluster-a/tiered") })
	})
}

// TestS3Outage: with MinIO down, every operation fails with a retriable
// ErrUnavailable (not ErrNotExist), and works again once it is back.
func TestS3Outage(t *testing.T) {
	m := miniotest.Start(t)
	s := newS3(t, m, "p")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	checks := map[string]error{}
	checks["put"] = s.Put(ctx, "k2", []byte("v"))
	_, checks["get"] = s.Get(ctx, "k")
	_, checks["stat"] = s.Stat(ctx, "k")
	checks["list"] = s.List(ctx, "", func(objstore.ObjectInfo) error { return nil })
	for op, err := range checks {
		if !errors.Is(err, objstore.ErrUnavailable) || !objstore.IsRetriable(err) {
			t.Errorf("%s with MinIO down: %v, want ErrUnavailable", op, err)
		}
	}
	m.Restart()
	if b, err := s.Get(ctx, "k"); err != nil || string(b) != "v" {
		t.Fatalf("Get after MinIO returned: %q %v", b, err)
	}
	// The bucket as an independent client sees it: prefix included.
	obj, err := m.Client(t).StatObject(ctx, bucketOf(s), "p/k", minioStatOpts())
	if err != nil || obj.Size != 1 {
		t.Fatalf("minio-go StatObject p/k: %+v %v", obj, err)
	}
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	good := []string{
		"file://" + dir,
		"mem://",
		"s3://bucket",
		"s3://bucket/some/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&path-style=true",
	}
	for _, u := range good {
		if _, err := objstore.Open(ctx, u); err != nil {
			t.Errorf("Open(%q): %v", u, err)
		}
	}
	bad := []string{
		"ftp://x", "file://host/path", "file://", "s3://", "s3:///prefix",
		"s3://b?path-style=maybe", "s3://b?endpoint=127.0.0.1:9000", "s3://b?colour=red", "s3://b/../x",
	}
	for _, u := range bad {
		if _, err := objstore.Open(ctx, u); err == nil {
			t.Errorf("Open(%q) accepted", u)
		}
	}
}

func TestFaulty(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMem()
	f := objstore.NewFaulty(mem)
	f.SlowDown(objstore.OpPut, 2)
	for i := range 2 {
		if err := f.Put(ctx, "k", []byte("v")); !errors.Is(err, objstore.ErrSlowDown) {
			t.Fatalf("put %d: %v, want ErrSlowDown", i, err)
		}
	}
	if _, err := mem.Get(ctx, "k"); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatal("a put failed with SlowDown took effect")
	}
	if err := f.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("third put: %v", err)
	}
	lost := errors.New("connection reset")
	f.FailNextAfter(objstore.OpPut, 1, lost)
	if err := f.Put(ctx, "k2", []byte("w")); !errors.Is(err, lost) {
		t.Fatalf("lost-ack put: %v", err)
	}
	if b, err := mem.Get(ctx, "k2"); err != nil || string(b) != "w" {
		t.Fatalf("a lost-ack put must land: %q %v", b, err)
	}
	f.SetDown(true)
	if _, err := f.Get(ctx, "k"); !errors.Is(err, objstore.ErrUnavailable) {
		t.Fatalf("get while down: %v", err)
	}
	f.SetDown(false)
	f.SetLatency(50 * time.Millisecond)
	start := time.Now()
	if _, err := f.Get(ctx, "k"); err != nil || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("latency not applied: %v after %s", err, time.Since(start))
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	f.SetLatency(time.Hour)
	if _, err := f.Get(cctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("latency must end with the context: %v", err)
	}
	if got := f.Calls(objstore.OpPut); got != 4 {
		t.Fatalf("Calls(put) = %d, want 4", got)
	}
	// The faulty wrapper with no faults passes the suite.
	objstoretest.Run(t, func(*testing.T) objstore.Store { return objstore.NewFaulty(objstore.NewMem()) })
}

func TestInstrumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := objstore.NewMetrics(reg)
	s := objstore.Instrument(objstore.NewMem(), m)
	ctx := context.Background()
	if err := s.Put(ctx, "a", make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRange(ctx, "a", 10, 30); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatal(err)
	}
	want := `
# HELP strata_objstore_bytes_total Bytes written (put) or read (get, get_range).
# TYPE strata_objstore_bytes_total counter
strata_objstore_bytes_total{op="get_range"} 30
strata_objstore_bytes_total{op="put"} 100
# HELP strata_objstore_errors_total Failed object-store requests, by operation and class (not_exist, slow_down, unavailable, other).
# TYPE strata_objstore_errors_total counter
strata_objstore_errors_total{class="not_exist",op="get"} 1
# HELP strata_objstore_requests_total Object-store requests, by operation.
# TYPE strata_objstore_requests_total counter
strata_objstore_requests_total{op="get"} 1
strata_objstore_requests_total{op="get_range"} 1
strata_objstore_requests_total{op="put"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "strata_objstore_bytes_total", "strata_objstore_errors_total", "strata_objstore_requests_total"); err != nil {
		t.Fatal(err)
	}
	objstoretest.Run(t, func(*testing.T) objstore.Store {
		return objstore.Instrument(objstore.NewMem(), objstore.NewMetrics(prometheus.NewRegistry()))
	})
}

// FuzzValidateKey: an accepted key never escapes the file store's root.
func FuzzValidateKey(f *testing.F) {
	for _, k := range []string{"a", "a/b", "../x", "a/../../b", "/abs", "a//b", ".tmp/x", "a/.", "\x00"} {
		f.Add(k)
	}
	root := filepath.Join(string(filepath.Separator), "root", "store")
	f.Fuzz(func(t *testing.T, key string) {
		if objstore.ValidateKey(key) != nil {
			return
		}
		p := filepath.Join(root, filepath.FromSlash(key))
		if !strings.HasPrefix(p, root+string(filepath.Separator)) {
			t.Fatalf("valid key %q maps outside the root: %s", key, p)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("valid key %q has segment %q", key, seg)
			}
		}
	})
}
