package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-stream/strata/client"
)

type consumeOptions struct {
	broker    string
	from      string
	partition int32
	max       int64
	timeout   time.Duration
	format    string
	// With --group: the group consumer's settings (consume_group.go).
	group          string
	sessionTimeout time.Duration
	assignor       string
}

func newConsumeCmd() *cobra.Command {
	o := &consumeOptions{}
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print records of a topic, one per line",
		Long: `Print the records of TOPIC on stdout, one per line.

--from is earliest, latest, an offset, or an RFC 3339 time (the first record
at or after it). Without --partition every partition is read. The command
runs until --max records were printed, or until --timeout passes with no new
record, or until interrupted.

--format chooses the line: %v value, %k key, %o offset, %p partition,
%t timestamp (RFC 3339, ms), %T timestamp (ms since the epoch), %% a
percent sign, \t a tab; or "json" for one JSON object per record.

--group G consumes as a member of consumer group G: the group's members
share the partitions, and each record's offset is committed after it was
printed (at least once: a record printed just before a crash may be printed
again by the member that takes the partition over). --from then applies only
to partitions without a committed offset: earliest, latest or none (fail).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConsume(cmd, o, args[0])
		},
	}
	addBrokerFlag(cmd, &o.broker)
	f := cmd.Flags()
	f.StringVar(&o.from, "from", "earliest", "start: earliest, latest, OFFSET or an RFC 3339 time")
	f.Int32Var(&o.partition, "partition", -1, "partition to read (default: all)")
	f.Int64Var(&o.max, "max", 0, "stop after N records (0: no limit)")
	f.DurationVar(&o.timeout, "timeout", 0, "stop after this long without a new record (0: wait forever)")
	f.StringVar(&o.format, "format", "%v", `line format (%v %k %o %p %t %T) or "json"`)
	f.StringVar(&o.group, "group", "", "consume as a member of this consumer group (commits after printing)")
	f.DurationVar(&o.sessionTimeout, "session-timeout", 0, "with --group: the member's session timeout (0: the broker's default, 10s)")
	f.StringVar(&o.assignor, "assignor", "", "with --group: range, roundrobin or cooperative-sticky (default: the group's)")
	return cmd
}

func parseFrom(s string) (client.Offset, error) {
	switch s {
	case "earliest", "":
		return client.Earliest(), nil
	case "latest":
		return client.Latest(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return client.Offset{}, fmt.Errorf("--from %d: offsets are not negative", n)
		}
		return client.AtOffset(n), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return client.AtTime(t), nil
	}
	return client.Offset{}, fmt.Errorf("--from %q: want earliest, latest, an offset or an RFC 3339 time", s)
}

// formatRecord renders r by format into dst.
func formatRecord(dst []byte, format string, r client.ConsumedRecord) []byte {
	if format == "json" {
		b, _ := json.Marshal(struct {
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
			Offset    int64  `json:"offset"`
			Timestamp int64  `json:"timestamp_ms"`
			Key       string `json:"key,omitempty"`
			Value     string `json:"value"`
		}{r.Topic, r.Partition, r.Offset, r.Timestamp.UnixMilli(), string(r.Key), string(r.Value)})
		return append(dst, b...)
	}
	for i := 0; i < len(format); i++ {
		c := format[i]
		if (c != '%' && c != '\\') || i+1 == len(format) {
			dst = append(dst, c)
			continue
		}
		i++
		switch c2 := format[i]; {
		case c == '\\' && c2 == 't':
			dst = append(dst, '\t')
		case c == '\\' && c2 == 'n':
			dst = append(dst, '\n')
		case c == '\\':
			dst = append(dst, c, c2)
		case c2 == 'v':
			dst = append(dst, r.Value...)
		case c2 == 'k':
			dst = append(dst, r.Key...)
		case c2 == 'o':
			dst = strconv.AppendInt(dst, r.Offset, 10)
		case c2 == 'p':
			dst = strconv.AppendInt(dst, int64(r.Partition), 10)
		case c2 == 't':
			dst = r.Timestamp.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
		case c2 == 'T':
			dst = strconv.AppendInt(dst, r.Timestamp.UnixMilli(), 10)
		case c2 == '%':
			dst = append(dst, '%')
		default:
			dst = append(dst, c, c2)
		}
	}
	return dst
}

func runConsume(cmd *cobra.Command, o *consumeOptions, topic string) error {
	if o.group != "" {
		return runGroupConsume(cmd, o, topic)
	}
	start, err := parseFrom(o.from)
	if err != nil {
		return err
	}
	if o.max < 0 {
		return fmt.Errorf("--max %d: must not be negative", o.max)
	}
	c, err := newClient(o.broker)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()

	var parts []int32
	if o.partition >= 0 {
		parts = []int32{o.partition}
	} else {
		d, err := c.DescribeTopic(ctx, topic)
		if err != nil {
			return err
		}
		for _, p := range d.GetPartitions() {
			parts = append(parts, p.GetPartition())
		}
	}

	out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
	defer func() { _ = out.Flush() }()
	var (
		mu       sync.Mutex
		printed  int64
		lastSeen = time.Now()
		firstErr error
		line     []byte
	)
	// emit prints records; false once --max is reached.
	emit := func(recs []client.ConsumedRecord) bool {
		mu.Lock()
		defer mu.Unlock()
		if len(recs) > 0 {
			lastSeen = time.Now()
		}
		for _, r := range recs {
			if o.max > 0 && printed >= o.max {
				return false
			}
			line = append(formatRecord(line[:0], o.format, r), '\n')
			if _, err := out.Write(line); err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return false
			}
			printed++
		}
		if err := out.Flush(); err != nil && firstErr == nil {
			firstErr = err
		}
		return firstErr == nil && (o.max == 0 || printed < o.max)
	}
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}

	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc := c.ConsumePartition(topic, p, start, client.ConsumerConfig{MaxWait: 500 * time.Millisecond})
			defer pc.Close()
			for ctx.Err() == nil {
				recs, err := pc.Poll(ctx)
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					return
				}
				if !emit(recs) {
					cancel()
					return
				}
			}
		}()
	}
	if o.timeout > 0 {
		go func() {
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					mu.Lock()
					idle := time.Since(lastSeen)
					mu.Unlock()
					if idle >= o.timeout {
						cancel()
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil && !errors.Is(firstErr, io.ErrClosedPipe) {
		return firstErr
	}
	return nil
}
