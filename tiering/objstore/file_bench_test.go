package objstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkFilePutFsyncLatency measures what a Put of a 64 MiB object does
// to the fsync latency of another file on the same disk - a partition log
// group-committing 64 KiB appends while a sealed segment is uploaded to
// the file store. It reports that fsync's p50/p99 with Put writing the
// object back in putChunk chunks and, for comparison, in one write, and
// with no Put at all (each iteration 100 ms of the fsync loop alone: what
// the disk does by itself).
func BenchmarkFilePutFsyncLatency(b *testing.B) {
	obj := make([]byte, 64<<20)
	_, _ = rand.Read(obj)
	for _, c := range []struct {
		name  string
		chunk int
	}{{"chunked", putChunk}, {"one-write", len(obj)}, {"no-put", 0}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			st, err := NewFile(filepath.Join(dir, "store"))
			if err != nil {
				b.Fatal(err)
			}
			st.chunk = c.chunk
			log, err := os.Create(filepath.Join(dir, "log"))
			if err != nil {
				b.Fatal(err)
			}
			defer log.Close()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var lat []time.Duration
			wg.Add(1)
			go func() { // the partition log: append 64 KiB, fsync, repeat
				defer wg.Done()
				rec := make([]byte, 64<<10)
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := log.Write(rec); err != nil {
						b.Error(err)
						return
					}
					t := time.Now()
					if err := log.Sync(); err != nil {
						b.Error(err)
						return
					}
					lat = append(lat, time.Since(t))
				}
			}()
			if c.chunk > 0 {
				b.SetBytes(int64(len(obj)))
			}
			b.ResetTimer()
			for i := range b.N {
				if c.chunk == 0 {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if err := st.Put(context.Background(), fmt.Sprintf("o/%d", i), obj); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "fsync-p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "fsync-p99-ms")
				b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "fsync-max-ms")
			}
		})
	}
}
