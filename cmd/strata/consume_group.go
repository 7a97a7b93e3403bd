package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/client"
)

// runGroupConsume is `strata consume TOPIC --group G`: a member of G that
// prints its records and commits each batch's offsets once it is printed.
func runGroupConsume(cmd *cobra.Command, o *consumeOptions, topic string) error {
	if o.partition >= 0 {
		return errors.New("--partition and --group exclude each other: the group assigns the partitions")
	}
	reset, err := client.ParseOffsetReset(o.from)
	if err != nil {
		return fmt.Errorf("--from %q with --group: want earliest, latest or none (where the group has no committed offset)", o.from)
	}
	if o.max < 0 {
		return fmt.Errorf("--max %d: must not be negative", o.max)
	}
	c, err := newClient(o.broker)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := cmd.Context()
	// What the group consumer would retry forever fails at once, as it
	// does without --group: no broker reachable, an unknown topic, an
	// invalid group name.
	if _, err := c.DescribeTopic(ctx, topic); err != nil {
		return err
	}
	if _, _, err := c.FindCoordinator(ctx, o.group); status.Code(err) == codes.InvalidArgument {
		return err
	}
	gc, err := c.JoinGroup(client.GroupConfig{
		Group: o.group, Topics: []string{topic}, Assignor: o.assignor, SessionTimeout: o.sessionTimeout,
		ManualCommit: true, Reset: reset, ClientID: "strata-cli",
		Fetch: client.ConsumerConfig{MaxWait: 500 * time.Millisecond},
	})
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
	var printed int64
	lastSeen := time.Now()
	var line []byte
	var failure error
	for failure == nil && ctx.Err() == nil && (o.max == 0 || printed < o.max) {
		if o.timeout > 0 && time.Since(lastSeen) >= o.timeout {
			break
		}
		recs, err := gc.Poll(ctx)
		if err != nil {
			if ctx.Err() == nil {
				failure = err
			}
			break
		}
		if len(recs) == 0 {
			continue
		}
		lastSeen = time.Now()
		next := map[client.TopicPartition]int64{}
		for _, r := range recs {
			if o.max > 0 && printed >= o.max {
				break
			}
			line = append(formatRecord(line[:0], o.format, r), '\n')
			if _, err := out.Write(line); err != nil {
				failure = err
				break
			}
			printed++
			next[client.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
		}
		if err := out.Flush(); err != nil && failure == nil {
			failure = err
		}
		if failure != nil || len(next) == 0 {
			continue
		}
		// Commit what was printed (even when interrupted meanwhile).
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := gc.CommitOffsets(cctx, next); err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "strata: warning: commit failed (another member may print these records again): %s\n", errorLine(err))
		}
		cancel()
	}
	if err := gc.Close(); err != nil && failure == nil {
		failure = err
	}
	return failure
}
