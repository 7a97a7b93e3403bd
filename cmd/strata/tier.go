package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-stream/strata/client"
)

func newTierCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tier", Short: "Tiered storage: where partitions' data lives"}
	var broker string
	status := &cobra.Command{
		Use:   "status [TOPIC]",
		Short: "Per partition: local and remote offset ranges, upload lag, objects, bytes, compression ratio",
		Args:  cobra.MaximumNArgs(1),
		RunE: withClient(&broker, func(cmd *cobra.Command, args []string, c *client.Client) error {
			var topics []string
			if len(args) == 1 {
				topics = args
			} else {
				ts, err := c.ListTopics(cmd.Context())
				if err != nil {
					return err
				}
				for _, t := range ts {
					topics = append(topics, t.GetName())
				}
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOPIC\tPARTITION\tLOCAL\tREMOTE\tOBJECTS\tREMOTE-BYTES\tRATIO\tUPLOAD-LAG")
			for _, name := range topics {
				d, err := c.DescribeTopic(cmd.Context(), name)
				if err != nil {
					return err
				}
				for _, p := range d.GetPartitions() {
					ts := p.GetTier()
					if ts == nil {
						fmt.Fprintf(w, "%s\t%d\t[%d, %d)\t-\t-\t-\t-\t- (no leader or tiering off)\n", name, p.GetPartition(), p.GetLogStartOffset(), p.GetLogEndOffset())
						continue
					}
					remote, ratio := "none", "-"
					if ts.GetRemoteObjects() > 0 {
						remote = fmt.Sprintf("[%d, %d)", ts.GetRemoteStartOffset(), ts.GetRemoteEndOffset())
						ratio = fmt.Sprintf("%.2fx", float64(ts.GetRemoteRawBytes())/float64(max(ts.GetRemoteBytes(), 1)))
					}
					fmt.Fprintf(w, "%s\t%d\t[%d, %d) %s\t%s\t%d\t%s\t%s\t%s, %s\n", name, p.GetPartition(),
						ts.GetLocalStartOffset(), p.GetLogEndOffset(), human(ts.GetLocalBytes()), remote, ts.GetRemoteObjects(),
						human(ts.GetRemoteBytes()), ratio, human(ts.GetUploadLagBytes()), (time.Duration(ts.GetUploadLagMs()) * time.Millisecond).Round(time.Millisecond))
				}
			}
			return w.Flush()
		}),
	}
	addBrokerFlag(status, &broker)
	cmd.AddCommand(status)
	return cmd
}

// human renders a byte count with a binary unit.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
