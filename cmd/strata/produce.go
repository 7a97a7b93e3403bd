package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/strata-stream/strata/client"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// parseAcks maps the CLI's acks names to the wire enum.
func parseAcks(s string) (stratav1.Acks, error) {
	switch s {
	case "":
		return stratav1.Acks_ACKS_UNSPECIFIED, nil
	case "none", "0":
		return stratav1.Acks_ACKS_NONE, nil
	case "leader", "1":
		return stratav1.Acks_ACKS_LEADER, nil
	case "all", "-1":
		return stratav1.Acks_ACKS_ALL, nil
	}
	return 0, fmt.Errorf("--acks %q: want none, leader or all", s)
}

type produceOptions struct {
	broker    string
	key       string
	keySep    string
	acks      string
	partition int32
	maxLine   int
}

func newProduceCmd() *cobra.Command {
	o := &produceOptions{}
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce one record per line of stdin",
		Long: `Produce one record per line of standard input to TOPIC.

Each line (without its newline) is a record value. --key gives every record
the same key; --key-separator splits each line at the first separator into
key and value. Records are batched and pipelined; when stdin ends the
command waits for every acknowledgement and prints how many records were
acknowledged. It exits non-zero if any record failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProduce(cmd, o, args[0])
		},
	}
	addBrokerFlag(cmd, &o.broker)
	f := cmd.Flags()
	f.StringVar(&o.key, "key", "", "key of every record")
	f.StringVar(&o.keySep, "key-separator", "", "split each line at the first SEP into key and value")
	f.StringVar(&o.acks, "acks", "all", "acknowledgement: none, leader or all")
	f.Int32Var(&o.partition, "partition", -1, "partition to produce to (default: the partitioner's choice)")
	f.IntVar(&o.maxLine, "max-line-bytes", 16<<20, "longest accepted input line")
	cmd.MarkFlagsMutuallyExclusive("key", "key-separator")
	return cmd
}

func runProduce(cmd *cobra.Command, o *produceOptions, topic string) error {
	acks, err := parseAcks(o.acks)
	if err != nil {
		return err
	}
	c, err := newClient(o.broker)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := cmd.Context()
	// Idempotent: a retry after a lost acknowledgement writes nothing twice.
	p := c.NewProducer(client.ProducerConfig{Acks: acks, ManualPartitions: o.partition >= 0, Idempotent: true})
	defer func() { _ = p.Close() }() // flushed below; Close only stops it

	var acked, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	promise := func(_ *client.Record, err error) {
		if err != nil {
			failed.Add(1)
			errOnce.Do(func() { firstErr = err })
			return
		}
		acked.Add(1)
	}
	sc := bufio.NewScanner(cmd.InOrStdin())
	sc.Buffer(make([]byte, 64<<10), o.maxLine)
	var sent int64
	for sc.Scan() {
		line := sc.Text()
		r := &client.Record{Topic: topic, Value: []byte(line)}
		switch {
		case o.keySep != "":
			if k, v, ok := strings.Cut(line, o.keySep); ok {
				r.Key, r.Value = []byte(k), []byte(v)
			}
		case cmd.Flags().Changed("key") || o.key != "":
			r.Key = []byte(o.key)
		}
		if o.partition >= 0 {
			r.Partition = o.partition
		}
		if err := p.Produce(ctx, r, promise); err != nil {
			return fmt.Errorf("produce record %d: %w", sent+1, err)
		}
		sent++
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read stdin: %w", err)
	}
	if err := p.Flush(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%d records acknowledged\n", acked.Load())
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d records failed; first error: %w", n, sent, firstErr)
	}
	return nil
}
