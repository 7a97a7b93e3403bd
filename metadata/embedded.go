package metadata

import (
	"context"
	"fmt"
	"net/url"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/strata-stream/strata/internal/freeport"
)

// EmbeddedConfig configures an embedded single-member etcd.
type EmbeddedConfig struct {
	// Dir holds etcd's data; it survives restarts.
	Dir string
	// ClientAddr and PeerAddr are host:port to listen on; empty means a
	// free port on 127.0.0.1.
	ClientAddr, PeerAddr string
	// StartTimeout bounds the wait for the server to be ready (default 60 s).
	StartTimeout time.Duration
	// LogLevel is etcd's own log level (default "error").
	LogLevel string
}

// Embedded is an etcd server running inside this process: what `strata
// serve` uses when no external etcd is configured, and what tests use.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
}

// StartEmbedded starts a single-member etcd and waits until it serves.
// Ports it picks itself (empty ClientAddr or PeerAddr) are picked again,
// up to three times, if another process binds one first.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "error"
	}
	picked := cfg.ClientAddr == "" || cfg.PeerAddr == ""
	for attempt := 1; ; attempt++ {
		try := cfg
		var err error
		if try.ClientAddr == "" {
			if try.ClientAddr, err = freeport.Addr(); err != nil {
				return nil, fmt.Errorf("metadata: embedded etcd: %w", err)
			}
		}
		if try.PeerAddr == "" {
			if try.PeerAddr, err = freeport.Addr(); err != nil {
				return nil, fmt.Errorf("metadata: embedded etcd: %w", err)
			}
		}
		e, err := startEmbedded(try)
		if err == nil || !picked || attempt == 3 || !freeport.InUse(err, err.Error()) {
			return e, err
		}
	}
}

func startEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	ec := embed.NewConfig()
	ec.Name = "strata"
	ec.Dir = cfg.Dir
	ec.LogLevel = cfg.LogLevel
	ec.LogOutputs = []string{"stderr"}
	client := url.URL{Scheme: "http", Host: cfg.ClientAddr}
	peer := url.URL{Scheme: "http", Host: cfg.PeerAddr}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"
	ec.QuotaBackendBytes = 2 << 30
	ec.ListenMetricsUrls = nil
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("metadata: start embedded etcd in %s: %w", cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("metadata: embedded etcd failed: %w", err)
	case <-time.After(cfg.StartTimeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("metadata: embedded etcd not ready after %s", cfg.StartTimeout)
	}
	return &Embedded{etcd: e, endpoints: []string{client.String()}}, nil
}

// Endpoints are the client URLs of the embedded server.
func (e *Embedded) Endpoints() []string { return e.endpoints }

// Client returns a new client of the embedded server; the caller closes it.
func (e *Embedded) Client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: e.endpoints, DialTimeout: 5 * time.Second})
}

// Close stops the server.
func (e *Embedded) Close() {
	e.etcd.Close()
}

// Err reports a fatal server error.
func (e *Embedded) Err() <-chan error { return e.etcd.Err() }

// Dial connects to etcd endpoints and checks that they answer.
func Dial(ctx context.Context, endpoints []string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("metadata: connect to etcd %v: %w", endpoints, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "/strata-ping"); err != nil {
		cli.Close()
		return nil, fmt.Errorf("metadata: etcd %v does not answer: %w", endpoints, err)
	}
	return cli, nil
}
