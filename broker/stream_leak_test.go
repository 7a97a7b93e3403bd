package broker_test

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/strata-stream/strata/broker"
	"github.com/strata-stream/strata/client"
	"github.com/strata-stream/strata/metadata"
)

func realBroker(t *testing.T) string {
	emb, err := metadata.StartEmbedded(metadata.EmbeddedConfig{Dir: t.TempDir(), LogLevel: "fatal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	cli, err := emb.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := broker.New(broker.Config{DataDir: t.TempDir(), BrokerID: 1, Advertise: lis.Addr().String(), MaxPartitions: 10, Logger: slog.New(slog.DiscardHandler)}, metadata.New(cli, "test"), nil)
	g, _ := srv.NewGRPCServer()
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Run(ctx)
	go g.Serve(lis)
	t.Cleanup(func() { srv.BeginShutdown(); g.Stop(); cancel() })
	for i := 0; !srv.Ready(); i++ {
		if i > 600 {
			t.Fatal("broker not ready after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return lis.Addr().String()
}

func countStacks(sub string) int {
	buf := make([]byte, 8<<20)
	n := runtime.Stack(buf, true)
	c := 0
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, sub) {
			c++
		}
	}
	return c
}

// Regression: a client that cancels its ProduceStream (the Go producer always does,
// on Close) leaves the broker's handler blocked on <-reqs about half the time:
// the Recv goroutine picks ctx.Done over delivering the error.
func TestProduceStreamHandlersEndOnCancel(t *testing.T) {
	addr := realBroker(t)
	c, _ := client.New(client.Config{Brokers: []string{addr}, Logger: slog.New(slog.DiscardHandler)})
	defer c.Close()
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "t", 1, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	const N = 20
	for i := 0; i < N; i++ {
		p := c.NewProducer(client.ProducerConfig{Linger: -1})
		if err := p.ProduceSync(ctx, &client.Record{Topic: "t", Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	time.Sleep(time.Second)
	h := countStacks("broker.produceService.ProduceStream(")
	t.Logf("after %d producers closed: %d ProduceStream handler goroutines still running", N, h)
	if h > 0 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "broker.produceService.ProduceStream") {
				t.Log(g)
			}
		}
		t.Errorf("broker leaked %d ProduceStream handlers", h)
	}
}
