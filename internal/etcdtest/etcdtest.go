// Package etcdtest starts a real embedded etcd for tests: what the
// metadata, broker, retention and integration tests coordinate through.
package etcdtest

import (
	"context"
	"strings"
	"testing"
	"time"

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

// GroupWrites counts the etcd revisions in (from, to] that wrote a key of
// consumer group group (its state, coordinator key or offsets) under the
// cluster prefix: it watches the prefix from from+1 until a sentinel key
// it writes after to.
func GroupWrites(t testing.TB, cli *clientv3.Client, prefix, group string, from, to int64) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sentinel := prefix + "test-sentinel"
	if _, err := cli.Put(ctx, sentinel, "x"); err != nil {
		t.Fatal(err)
	}
	revs := map[int64]bool{}
	for resp := range cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from+1)) {
		for _, ev := range resp.Events {
			k := string(ev.Kv.Key)
			if k == sentinel {
				return len(revs)
			}
			if ev.Kv.ModRevision <= to && (strings.HasPrefix(k, prefix+"groups/"+group+"/") || strings.HasPrefix(k, prefix+"offsets/"+group+"/")) {
				revs[ev.Kv.ModRevision] = true
			}
		}
	}
	t.Fatal("watch ended before the sentinel")
	return 0
}
