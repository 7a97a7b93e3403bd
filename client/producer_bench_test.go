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
func BenchmarkProducer(b *testing.B) { benchProducer(b, "t") }

// BenchmarkProducerTwoTopics is BenchmarkProducer with records going to
// two topics in turn: the producer's cache of the last topic misses on
// every record.
func BenchmarkProducerTwoTopics(b *testing.B) { benchProducer(b, "t", "u") }

// benchProducer produces b.N records of 100 B to partition 0 of topics in
// turn (t, or t and u: the fake broker's).
func benchProducer(b *testing.B, topics ...string) {
	f := &fakeBroker{streamFn: okStream, alsoU: true}
	c := fakeClient(b, f)
	p := c.NewProducer(client.ProducerConfig{Linger: time.Millisecond, BatchBytes: 64 << 10, ManualPartitions: true})
	defer p.Close()
	ctx := context.Background()
	value := make([]byte, 100)
	// One record to each topic first: the stream is open and the metadata
	// cached.
	for _, topic := range topics {
		if err := p.ProduceSync(ctx, &client.Record{Topic: topic, Value: value}); err != nil {
			b.Fatal(err)
		}
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
	for i := range b.N {
		if len(slab) == 0 {
			slab = make([]client.Record, 1024)
		}
		r := &slab[0]
		slab = slab[1:]
		*r = client.Record{Topic: topics[i%len(topics)], Value: value}
		if err := p.Produce(ctx, r, promise); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}
