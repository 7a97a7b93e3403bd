package segment

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
)

// benchBatch is a 16 KiB batch of 16 records of 1 KiB (benchValue).
func benchBatch(r *rand.Rand) []byte {
	recs := make([]Record, 16)
	for i := range recs {
		recs[i] = Record{Timestamp: 1_700_000_000_000 + int64(i), Key: []byte("user-12345"), Value: benchValue(r)}
	}
	return AppendBatch(nil, NoProducer, recs)
}

// BenchmarkAppendGroupCommit measures durable appends (SyncAlways: every
// append waits for an fsync, shared by the concurrent producers) of 16 KiB
// batches of 1 KiB records to a real file system.
func BenchmarkAppendGroupCommit(b *testing.B) {
	for _, producers := range []int{1, 8, 32} {
		b.Run("producers="+strconv.Itoa(producers), func(b *testing.B) {
			l, err := Open(Config{Dir: b.TempDir(), SyncPolicy: SyncAlways, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			proto := benchBatch(rand.New(rand.NewPCG(1, 2)))
			b.SetBytes(int64(len(proto)))
			b.SetParallelism((producers + 1) / 2) // 2 cores: GOMAXPROCS × this
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				batch := append([]byte(nil), proto...)
				for pb.Next() {
					_, last, err := l.Append(batch)
					if err == nil {
						err = l.WaitDurable(context.Background(), last+1)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkAppendNoSync measures the write path alone (SyncNever).
func BenchmarkAppendNoSync(b *testing.B) {
	l, err := Open(Config{Dir: b.TempDir(), SyncPolicy: SyncNever, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := benchBatch(rand.New(rand.NewPCG(1, 2)))
	b.SetBytes(int64(len(batch)))
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSequentialRead reads a 64 MiB log from start to end in 1 MiB
// reads (every batch CRC-checked), from the page cache.
func BenchmarkSequentialRead(b *testing.B) {
	l, err := Open(Config{Dir: b.TempDir(), SegmentBytes: 16 << 20, SyncPolicy: SyncNever, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := benchBatch(rand.New(rand.NewPCG(1, 2)))
	var total int64
	for total < 64<<20 {
		if _, _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
		total += int64(len(batch))
	}
	_, end := l.Offsets()
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		for off := int64(0); off < end; {
			res, err := l.Read(off, 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			off = res.Next
		}
	}
}

// BenchmarkAppendBatch is the producer's encoding cost: one batch of 2,500
// records of 100 bytes (a 256 KiB producer batch of small records).
func BenchmarkAppendBatch(b *testing.B) {
	recs := make([]Record, 2500)
	for i := range recs {
		recs[i] = Record{Timestamp: 1764158400000 + int64(i), Value: make([]byte, 100)}
	}
	var buf []byte
	b.SetBytes(2500 * 100)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendBatch(buf[:0], NoProducer, recs)
	}
}
