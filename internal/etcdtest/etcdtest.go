// Package etcdtest starts a real embedded etcd for tests: what the
// metadata, broker, retention and integration tests coordinate through.
package etcdtest

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-stream/strata/metadata"
)

// Start starts an embedded etcd on 127.0.0.1 in a temporary directory of
// t, and a client of it. Both are closed when t ends.
func Start(t testing.TB) (*metadata.Embedded, *clientv3.Client) {
	t.Helper()
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
	return emb, cli
}
