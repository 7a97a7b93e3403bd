package broker

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/strata-stream/strata/client"
)

// handlerStacks returns the stacks of goroutines whose stack mentions sub.
func handlerStacks(sub string) []string {
	buf := make([]byte, 8<<20)
	n := runtime.Stack(buf, true)
	var out []string
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, sub) {
			out = append(out, g)
		}
	}
	return out
}

// Regression: a client that cancels its ProduceStream (the Go producer
// does, on Close) left the broker's handler blocked on <-reqs about half
// the time: the Recv goroutine picked ctx.Done over delivering the error.
func TestProduceStreamHandlersEndOnCancel(t *testing.T) {
	b := startBroker(t)
	c, err := client.New(client.Config{Brokers: []string{b.conn.Target()}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "leak", 1, nil); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for range n {
		p := c.NewProducer(client.ProducerConfig{Linger: -1})
		if err := p.ProduceSync(ctx, &client.Record{Topic: "leak", Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Handlers end once their stream is canceled; give them a moment.
	var stuck []string
	for range 20 {
		if stuck = handlerStacks("broker.produceService.ProduceStream("); len(stuck) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, g := range stuck {
		t.Log(g)
	}
	t.Fatalf("after %d producers closed, %d ProduceStream handlers are still running", n, len(stuck))
}
