package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-stream/strata/client"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// addBrokerFlag adds --broker (env STRATA_BROKER, like every flag).
func addBrokerFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVar(dst, "broker", "127.0.0.1:9400", "broker address host:port (env STRATA_BROKER)")
}

// withClient returns a RunE that connects to the broker in *broker and
// runs fn with the client (closed afterwards).
func withClient(broker *string, fn func(cmd *cobra.Command, args []string, c *client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := newClient(*broker)
		if err != nil {
			return err
		}
		defer c.Close()
		return fn(cmd, args, c)
	}
}

func newClient(broker string) (*client.Client, error) {
	var seeds []string
	for _, b := range strings.Split(broker, ",") {
		if b = strings.TrimSpace(b); b != "" {
			seeds = append(seeds, b)
		}
	}
	return client.New(client.Config{Brokers: seeds})
}

func newTopicCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "topic", Short: "Create, list, describe and delete topics"}
	cmd.AddCommand(newTopicCreateCmd(), newTopicListCmd(), newTopicDescribeCmd(), newTopicDeleteCmd(), newTopicAlterCmd())
	return cmd
}

// parseConfigPairs parses key=value pairs.
func parseConfigPairs(pairs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--config %q: want key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

func newTopicCreateCmd() *cobra.Command {
	var broker string
	var partitions int32
	var configs []string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(&broker, func(cmd *cobra.Command, args []string, c *client.Client) error {
			cfg, err := parseConfigPairs(configs)
			if err != nil {
				return err
			}
			d, err := c.CreateTopic(cmd.Context(), args[0], partitions, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created topic %s with %d partitions\n", d.GetName(), len(d.GetPartitions()))
			return nil
		}),
	}
	addBrokerFlag(cmd, &broker)
	cmd.Flags().Int32Var(&partitions, "partitions", 1, "number of partitions")
	// Named "config" on the command line like the contract; the
	// root's --config (a YAML file) is shadowed on this command.
	cmd.Flags().StringArrayVar(&configs, "config", nil, "topic config key=value (repeatable), e.g. retention.ms=86400000")
	return cmd
}

func newTopicAlterCmd() *cobra.Command {
	var broker string
	var set, del []string
	cmd := &cobra.Command{
		Use:   "alter NAME",
		Short: "Set or reset topic config keys",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(&broker, func(cmd *cobra.Command, args []string, c *client.Client) error {
			cfg, err := parseConfigPairs(set)
			if err != nil {
				return err
			}
			d, err := c.AlterTopicConfig(cmd.Context(), args[0], cfg, del)
			if err != nil {
				return err
			}
			printDescription(cmd, d)
			return nil
		}),
	}
	addBrokerFlag(cmd, &broker)
	cmd.Flags().StringArrayVar(&set, "set", nil, "config key=value to set (repeatable)")
	cmd.Flags().StringArrayVar(&del, "delete", nil, "config key to reset to its default (repeatable)")
	return cmd
}

func newTopicListCmd() *cobra.Command {
	var broker string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List topics",
		Args:  cobra.NoArgs,
		RunE: withClient(&broker, func(cmd *cobra.Command, args []string, c *client.Client) error {
			ts, err := c.ListTopics(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOPIC\tPARTITIONS")
			for _, t := range ts {
				fmt.Fprintf(w, "%s\t%d\n", t.GetName(), t.GetPartitions())
			}
			return w.Flush()
		}),
	}
	addBrokerFlag(cmd, &broker)
	return cmd
}

func newTopicDescribeCmd() *cobra.Command {
	var broker string
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic's config, partitions, leaders and offsets",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(&broker, func(cmd *cobra.Command, args []string, c *client.Client) error {
			d, err := c.DescribeTopic(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			printDescription(cmd, d)
			return nil
		}),
	}
	addBrokerFlag(cmd, &broker)
	return cmd
}

func printDescription(cmd *cobra.Command, d *stratav1.TopicDescription) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "topic: %s\nid: %s\npartitions: %d\nconfig:\n", d.GetName(), d.GetId(), len(d.GetPartitions()))
	keys := make([]string, 0, len(d.GetConfig()))
	for k := range d.GetConfig() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(out, "  %s=%s\n", k, d.GetConfig()[k])
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PARTITION\tLEADER\tEPOCH\tLOG-START\tLOG-END")
	for _, p := range d.GetPartitions() {
		fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\n", p.GetPartition(), p.GetLeaderId(), p.GetLeaderEpoch(), p.GetLogStartOffset(), p.GetLogEndOffset())
	}
	_ = w.Flush()
	if !strings.Contains(d.GetConfig()["cleanup.policy"], "compact") {
		return
	}
	fmt.Fprintln(out, "compaction:")
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PARTITION\tDIRTY-RATIO\tCLEANED-END\tLAST-RUN\tTOOK\tOBJECTS\tBYTES\tRECORDS-REMOVED\tTOMBSTONES-REMOVED")
	for _, p := range d.GetPartitions() {
		c := p.GetCompaction()
		if c == nil {
			fmt.Fprintf(w, "%d\t-\t-\t- (no leader or tiering off)\t\t\t\t\t\n", p.GetPartition())
			continue
		}
		last, took := "never", "-"
		if c.GetLastRunMs() > 0 {
			last = time.UnixMilli(c.GetLastRunMs()).UTC().Format(time.RFC3339)
			took = (time.Duration(c.GetLastRunDurationMs()) * time.Millisecond).String()
		}
		fmt.Fprintf(w, "%d\t%.2f\t%d\t%s\t%s\t%d -> %d\t%s -> %s\t%d\t%d\n", p.GetPartition(), c.GetDirtyRatio(), c.GetCleanedEndOffset(), last, took,
			c.GetLastRunObjectsIn(), c.GetLastRunObjectsOut(), human(c.GetLastRunBytesIn()), human(c.GetLastRunBytesOut()),
			c.GetLastRunRecordsRemoved(), c.GetLastRunTombstonesRemoved())
	}
	_ = w.Flush()
}

func newTopicDeleteCmd() *cobra.Command {
	var broker string
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic and its data",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(&broker, func(cmd *cobra.Command, args []string, c *client.Client) error {
			if err := c.DeleteTopic(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %s\n", args[0])
			return nil
		}),
	}
	addBrokerFlag(cmd, &broker)
	return cmd
}
