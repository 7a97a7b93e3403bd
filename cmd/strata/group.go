package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-stream/strata/client"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

func newGroupCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "List, describe, reset the offsets of and delete consumer groups"}
	cmd.AddCommand(newGroupListCmd(), newGroupDescribeCmd(), newGroupResetCmd(), newGroupDeleteCmd())
	return cmd
}

func newGroupListCmd() *cobra.Command {
	var broker string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List consumer groups",
		Args:  cobra.NoArgs,
		RunE: withClient(&broker, func(cmd *cobra.Command, _ []string, c *client.Client) error {
			gs, err := c.ListGroups(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "GROUP\tMEMBERS\tCOORDINATOR\tEPOCH\tASSIGNOR")
			for _, g := range gs {
				fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\n", g.GetGroup(), g.GetMembers(), orDash(int64(g.GetCoordinatorId())), g.GetEpoch(), dashIfEmpty(g.GetAssignor()))
			}
			return w.Flush()
		}),
	}
	addBrokerFlag(cmd, &broker)
	return cmd
}

func orDash(v int64) string {
	if v < 0 {
		return "-"
	}
	return strconv.FormatInt(v, 10)
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatTPs(list []*stratav1.TopicPartitions) string {
	var parts []string
	for _, tps := range list {
		ps := make([]string, len(tps.GetPartitions()))
		for i, p := range tps.GetPartitions() {
			ps[i] = strconv.Itoa(int(p))
		}
		parts = append(parts, tps.GetTopic()+":"+strings.Join(ps, ","))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func newGroupDescribeCmd() *cobra.Command {
	var broker string
	cmd := &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's members, assignment, committed offsets, log ends and lag",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(&broker, func(cmd *cobra.Command, args []string, c *client.Client) error {
			d, err := c.DescribeGroup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			printGroup(cmd.OutOrStdout(), d)
			return nil
		}),
	}
	addBrokerFlag(cmd, &broker)
	return cmd
}

func printGroup(out io.Writer, d *stratav1.DescribeGroupResponse) {
	fmt.Fprintf(out, "group: %s\ncoordinator: %s\nepoch: %d\nassignor: %s\nmembers: %d\n",
		d.GetGroup(), orDash(int64(d.GetCoordinatorId())), d.GetEpoch(), dashIfEmpty(d.GetAssignor()), len(d.GetMembers()))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if len(d.GetMembers()) > 0 {
		fmt.Fprintln(w, "MEMBER\tGENERATION\tCLIENT\tTOPICS\tPARTITIONS")
		for _, m := range d.GetMembers() {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", m.GetMemberId(), m.GetGeneration(), dashIfEmpty(m.GetClientId()), strings.Join(m.GetTopics(), ","), formatTPs(m.GetOwned()))
		}
		_ = w.Flush()
		fmt.Fprintln(out)
	}
	fmt.Fprintln(w, "TOPIC\tPARTITION\tMEMBER\tCOMMITTED\tLOG-END\tLAG")
	for _, p := range d.GetPartitions() {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", p.GetTopic(), p.GetPartition(), dashIfEmpty(p.GetMemberId()),
			orDash(p.GetCommittedOffset()), orDash(p.GetLogEndOffset()), orDash(p.GetLag()))
	}
	_ = w.Flush()
}

// parseResetTo parses --to: earliest, latest, an offset or an RFC 3339
// time.
func parseResetTo(s string) (client.Offset, error) {
	switch s {
	case "earliest":
		return client.Earliest(), nil
	case "latest":
		return client.Latest(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return client.Offset{}, fmt.Errorf("--to %d: offsets are not negative", n)
		}
		return client.AtOffset(n), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return client.AtTime(t), nil
	}
	return client.Offset{}, fmt.Errorf("--to %q: want earliest, latest, an offset or an RFC 3339 time", s)
}

func newGroupResetCmd() *cobra.Command {
	var broker, topic, to string
	var partition int32
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP --topic TOPIC --to earliest|latest|OFFSET|RFC3339-time",
		Short: "Set a group's committed offsets of a topic (refused while the group has members)",
		Long: `Set the committed offsets of GROUP for every partition of --topic (or only
--partition): to the first stored offset (earliest), the log end (latest), an
offset (clamped to the partition's stored range), or the first record at or
after an RFC 3339 time (the log end when there is none). The group must have
no members: stop its consumers first.`,
		Args: cobra.ExactArgs(1),
		RunE: withClient(&broker, func(cmd *cobra.Command, args []string, c *client.Client) error {
			if topic == "" {
				return errors.New("--topic is required")
			}
			spec, err := parseResetTo(to)
			if err != nil {
				return err
			}
			return runGroupReset(cmd, c, args[0], topic, partition, spec)
		}),
	}
	addBrokerFlag(cmd, &broker)
	f := cmd.Flags()
	f.StringVar(&topic, "topic", "", "topic whose offsets to reset (required)")
	f.StringVar(&to, "to", "", "earliest, latest, an offset or an RFC 3339 time (required)")
	f.Int32Var(&partition, "partition", -1, "only this partition (default: all)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func runGroupReset(cmd *cobra.Command, c *client.Client, group, topic string, partition int32, spec client.Offset) error {
	ctx := cmd.Context()
	// Refuse early, before resolving offsets (the store checks again).
	if d, err := c.DescribeGroup(ctx, group); err == nil && len(d.GetMembers()) > 0 {
		return fmt.Errorf("group %s has %d active member(s); stop its consumers before resetting its offsets", group, len(d.GetMembers()))
	}
	td, err := c.DescribeTopic(ctx, topic)
	if err != nil {
		return err
	}
	offsets := map[client.TopicPartition]int64{}
	for _, p := range td.GetPartitions() {
		if partition >= 0 && p.GetPartition() != partition {
			continue
		}
		var off int64
		if exact, ok := spec.Spec().GetSpec().(*stratav1.OffsetSpec_Offset); ok {
			// Clamped to what is stored.
			off = min(max(exact.Offset, p.GetLogStartOffset()), p.GetLogEndOffset())
		} else {
			r, err := listOffsetsRetry(ctx, c, topic, p.GetPartition(), spec)
			if err != nil {
				return fmt.Errorf("resolve %s/%d: %w", topic, p.GetPartition(), err)
			}
			off = r.GetOffset()
		}
		offsets[client.TopicPartition{Topic: topic, Partition: p.GetPartition()}] = off
	}
	if len(offsets) == 0 {
		return fmt.Errorf("topic %s has no partition %d", topic, partition)
	}
	prev, err := c.ResetGroupOffsets(ctx, group, offsets)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TOPIC\tPARTITION\tPREVIOUS\tNEW")
	for _, po := range prev {
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\n", po.GetTopic(), po.GetPartition(), orDash(po.GetOffset()), offsets[client.TopicPartition{Topic: po.GetTopic(), Partition: po.GetPartition()}])
	}
	return w.Flush()
}

// listOffsetsRetry resolves a position, retrying while leaders move.
func listOffsetsRetry(ctx context.Context, c *client.Client, topic string, p int32, spec client.Offset) (*stratav1.ListOffsetsResult, error) {
	var last error
	for attempt := range 20 {
		r, err := c.ListOffsets(ctx, topic, p, spec.Spec())
		if err == nil {
			return r, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return nil, last
}

func newGroupDeleteCmd() *cobra.Command {
	var broker string
	cmd := &cobra.Command{
		Use:   "delete GROUP",
		Short: "Delete a group and its committed offsets (refused while it has members)",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(&broker, func(cmd *cobra.Command, args []string, c *client.Client) error {
			if err := c.DeleteGroup(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted group %s\n", args[0])
			return nil
		}),
	}
	addBrokerFlag(cmd, &broker)
	return cmd
}
