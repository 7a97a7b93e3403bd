package compaction

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-stream/strata/internal/miniotest"
	"github.com/strata-stream/strata/metadata"
	"github.com/strata-stream/strata/tiering/objstore"
)

// BenchmarkCompact measures a compaction run's throughput over raw
// record batch bytes (MB/s as reported): 10 000 keys each updated 10
// times with 100-byte values (10% deleted in the last round), in 25
// segments of about 470 KiB, into outputs of up to 64 MiB, against an
// in-memory bucket (the CPU cost) and a local MinIO (with the GETs and
// PUTs). A run reads the dirty entries twice (the key map, then the
// rewrite), decodes and CRC-checks every frame and batch, and encodes and
// compresses the output; unlimited rate.
func BenchmarkCompact(b *testing.B) {
	now := time.UnixMilli(1_800_000_000_000)
	recs := updates(10000, 10, func(k int) bool { return k%10 == 0 }, now.UnixMilli())
	for i := range recs {
		if recs[i].value != nil {
			recs[i].value = append(recs[i].value[:40:40], make([]byte, 60)...)
		}
	}
	base := objstore.NewMem()
	entries := uploadLog(b, base, recs, 100, 40)
	ctx := context.Background()
	stores := []struct {
		name string
		open func(b *testing.B) objstore.Store
	}{
		{"mem", func(*testing.B) objstore.Store { return objstore.NewMem() }},
		{"minio", func(b *testing.B) objstore.Store {
			m := miniotest.Start(b)
			m.MakeBucket(b, "bench")
			s, err := objstore.NewS3(ctx, objstore.S3Config{Bucket: "bench", Prefix: "c", Endpoint: m.Endpoint(), PathStyle: true,
				AccessKey: miniotest.AccessKey, SecretKey: miniotest.SecretKey})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	for _, st := range stores {
		b.Run(fmt.Sprintf("store=%s", st.name), func(b *testing.B) {
			store := st.open(b)
			b.SetBytes(sumRaw(entries))
			cfg := cfgFor(now)
			cfg.SegmentBytes = 64 << 20
			var res Result
			for b.Loop() {
				b.StopTimer()
				for _, e := range entries {
					obj, _ := base.Get(ctx, e.Key)
					if err := store.Put(ctx, e.Key, obj); err != nil {
						b.Fatal(err)
					}
				}
				m := newManifest(entries)
				b.StartTimer()
				var err error
				if res, err = Run(ctx, cfg, entries, metadata.CompactionStatus{}, store, m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(res.ObjectsOut), "objects_out")
			b.ReportMetric(float64(res.BytesOut), "bytes_out")
		})
	}
}
