package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/strata-stream/strata/client"
)

// BenchmarkProducer produces b.N records of 100 B to one partition of a
// fake broker that acknowledges at once, in 64 KiB batches: the client's
// CPU and allocations per record (one op is one record), transport
// included, broker excluded.
//
//	go test -run '^$' -bench Producer -benchmem -count 5 ./client/
func BenchmarkProducer(b *testing.B) {
	f := &fakeBroker{streamFn: okStream}
	c := fakeClient(b, f)
	p := c.NewProducer(client.ProducerConfig{Linger: time.Millisecond, BatchBytes: 64 << 10, ManualPartitions: true})
	defer p.Close()
	ctx := context.Background()
	value := make([]byte, 100)
	// One record first: the stream is open and the metadata cached.
	if err := p.ProduceSync(ctx, &client.Record{Topic: "t", Value: value}); err != nil {
		b.Fatal(err)
	}
	// Records in slabs, as bench produce allocates them: a slice of all
	// b.N would keep them live and have the collector scan it.
	var slab []client.Record
	promise := func(_ *client.Record, err error) {
		if err != nil {
			b.Error(err)
		}
	}
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if len(slab) == 0 {
			slab = make([]client.Record, 1024)
		}
		r := &slab[0]
		slab = slab[1:]
		*r = client.Record{Topic: "t", Value: value}
		if err := p.Produce(ctx, r, promise); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkProducerTwoTopics is BenchmarkProducer with records going to
// two topics in turn: the producer's per-topic cache misses on every
// record.
//
//	go test -run '^$' -bench ProducerTwoTopics -benchmem -count 5 ./client/
func BenchmarkProducerTwoTopics(b *testing.B) {
	f := &fakeBroker{streamFn: okStream, alsoU: true}
	c := fakeClient(b, f)
	p := c.NewProducer(client.ProducerConfig{Linger: time.Millisecond, BatchBytes: 64 << 10, ManualPartitions: true})
	defer p.Close()
	ctx := context.Background()
	value := make([]byte, 100)
	topics := []string{"t", "u"}
	for _, tp := range topics {
		if err := p.ProduceSync(ctx, &client.Record{Topic: tp, Value: value}); err != nil {
			b.Fatal(err)
		}
	}
	var slab []client.Record
	promise := func(_ *client.Record, err error) {
		if err != nil {
			b.Error(err)
		}
	}
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if len(slab) == 0 {
			slab = make([]client.Record, 1024)
		}
		r := &slab[0]
		slab = slab[1:]
		*r = client.Record{Topic: topics[i%2], Value: value}
		if err := p.Produce(ctx, r, promise); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}
