package main

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/client"
)

// TestConfigPrecedence: flags beat STRATA_* environment variables, which
// beat the YAML --config file, which beats the defaults.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "strata.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:1111\nhttp-listen: 127.0.0.1:2222\ndata-dir: /from/file\netcd-endpoints: [http://a:1, http://b:2]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STRATA_HTTP_LISTEN", "127.0.0.1:3333")
	t.Setenv("STRATA_DATA_DIR", "/from/env")
	var got *serveOptions
	root := newRootCmd()
	for _, c := range root.Commands() {
		if c.Name() == "serve" {
			c.RunE = func(cmd *cobra.Command, _ []string) error {
				got = &serveOptions{}
				got.listen, _ = cmd.Flags().GetString("listen")
				got.httpListen, _ = cmd.Flags().GetString("http-listen")
				got.dataDir, _ = cmd.Flags().GetString("data-dir")
				got.etcdEndpoints, _ = cmd.Flags().GetStringSlice("etcd-endpoints")
				got.syncPolicy, _ = cmd.Flags().GetString("sync-policy")
				return nil
			}
		}
	}
	root.SetArgs([]string{"serve", "--config", file, "--data-dir", "/from/flag"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	want := serveOptions{listen: "127.0.0.1:1111", httpListen: "127.0.0.1:3333", dataDir: "/from/flag", syncPolicy: "always"}
	if got.listen != want.listen || got.httpListen != want.httpListen || got.dataDir != want.dataDir || got.syncPolicy != want.syncPolicy {
		t.Fatalf("got listen=%s http=%s data=%s sync=%s, want %+v", got.listen, got.httpListen, got.dataDir, got.syncPolicy, want)
	}
	if strings.Join(got.etcdEndpoints, ",") != "http://a:1,http://b:2" {
		t.Fatalf("etcd endpoints from the file: %v", got.etcdEndpoints)
	}

	// An unknown key in the file is an error naming it.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("lissten: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root = newRootCmd()
	root.SetArgs([]string{"serve", "--config", bad})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "lissten") {
		t.Fatalf("unknown config key: %v", err)
	}
}

func TestParseFrom(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want client.Offset
		err  bool
	}{
		{"earliest", client.Earliest(), false},
		{"latest", client.Latest(), false},
		{"42", client.AtOffset(42), false},
		{"2026-11-26T12:00:00Z", client.AtTime(at), false},
		{"-1", client.Offset{}, true},
		{"yesterday", client.Offset{}, true},
	}
	for _, c := range cases {
		got, err := parseFrom(c.in)
		if (err != nil) != c.err {
			t.Errorf("parseFrom(%q) error %v, want error %v", c.in, err, c.err)
			continue
		}
		if !c.err && got.Spec().String() != c.want.Spec().String() {
			t.Errorf("parseFrom(%q) = %v, want %v", c.in, got.Spec(), c.want.Spec())
		}
	}
}

func TestFormatRecord(t *testing.T) {
	r := client.ConsumedRecord{Topic: "t", Partition: 2, Offset: 17, Timestamp: time.UnixMilli(1764158400123).UTC(), Key: []byte("k"), Value: []byte("v\x00w")}
	cases := map[string]string{
		"%v":                 "v\x00w",
		"%p/%o %k=%v":        "2/17 k=v\x00w",
		"%T %t":              "1764158400123 2025-11-26T12:00:00.123Z",
		`%k\t%v 100%% %x \q`: "k\tv\x00w 100% %x \\q",
		"json":               `{"topic":"t","partition":2,"offset":17,"timestamp_ms":1764158400123,"key":"k","value":"v\u0000w"}`,
	}
	for format, want := range cases {
		if got := string(formatRecord(nil, format, r)); got != want {
			t.Errorf("format %q = %q, want %q", format, got, want)
		}
	}
}

func TestErrorLine(t *testing.T) {
	if got := errorLine(status.Error(codes.NotFound, "metadata: topic not found:\n  x")); got != "NotFound: metadata: topic not found: x" {
		t.Errorf("status error line %q", got)
	}
	if got := errorLine(errors.New("a\nb")); got != "a b" {
		t.Errorf("plain error line %q", got)
	}
}

func TestParseAcks(t *testing.T) {
	for _, ok := range []string{"none", "leader", "all", "0", "1", "-1"} {
		if _, err := parseAcks(ok); err != nil {
			t.Errorf("parseAcks(%q): %v", ok, err)
		}
	}
	if _, err := parseAcks("most"); err == nil {
		t.Error("parseAcks(most) accepted")
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1024": 1024, "512MiB": 512 << 20, "4GiB": 4 << 30, "1.5GB": 1.5e9, "10 KB": 10000} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "5XB", "-1", "1..2GiB"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) accepted", bad)
		}
	}
}

// TestServeWorkerFlags: a bad value of a background worker's flag is a
// one-line error naming the flag, reported before anything is opened (here
// a data dir that cannot be created would fail first).
func TestServeWorkerFlags(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ args, want string }{
		{"--compaction-bytes-per-sec fast", `--compaction-bytes-per-sec: "fast": want a size`},
		{"--compaction-bytes-per-sec -1MiB", `--compaction-bytes-per-sec: "-1MiB"`},
		{"--retention-check-interval 0s", "--retention-check-interval 0s: must be positive"},
		{"--compaction-interval -1s", "--compaction-interval -1s: must be positive"},
		{"--gc-interval 0s", "--gc-interval 0s: must be positive"},
		{"--gc-grace-period 0s", "--gc-grace-period 0s: must be positive"},
		{"--gc-max-deletes 0", "--gc-max-deletes 0: must be positive"},
		{"--page-cache-window lots", `--page-cache-window: "lots": want a size such as 512MiB or 4GiB, or all`},
		{"--page-cache-window -1MiB", `--page-cache-window: "-1MiB"`},
	} {
		root := newRootCmd()
		root.SilenceErrors, root.SilenceUsage = true, true
		root.SetArgs(append([]string{"serve", "--object-store", "none", "--data-dir", filepath.Join(notADir, "data")}, strings.Fields(c.args)...))
		err := root.Execute()
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("serve %s: %v, want one line starting %q", c.args, err, c.want)
		}
	}
}

// TestGroupConsumeFailsWithoutBroker: `consume --group` with no broker
// reachable fails with a one-line error, like `consume` without a group,
// instead of retrying silently (and exiting 0 with --timeout).
func TestGroupConsumeFailsWithoutBroker(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	root := newRootCmd()
	root.SetArgs([]string{"consume", "t", "--group", "g", "--broker", addr, "--timeout", "3s"})
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	start := time.Now()
	err = root.Execute()
	if err == nil || !errors.Is(err, client.ErrNoBroker) {
		t.Fatalf("consume --group without a broker: %v, want ErrNoBroker", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("failed after %s, want at once", took)
	}
}
