package main

import (
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/strata-stream/strata/client"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "The cluster: brokers, controller, partition leaders"}
	var broker string
	status := &cobra.Command{
		Use:   "status",
		Short: "Brokers (id, address, alive), the controller, partitions per broker, leader and epoch per partition",
		Args:  cobra.NoArgs,
		RunE: withClient(&broker, func(cmd *cobra.Command, args []string, c *client.Client) error {
			md, err := c.Metadata(cmd.Context())
			if err != nil {
				return err
			}
			led := map[int32]int{}
			for _, t := range md.GetTopics() {
				for _, p := range t.GetPartitions() {
					led[p.GetLeaderId()]++
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "cluster: %s\ncontroller: %d\n\n", md.GetClusterId(), md.GetControllerId())
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "BROKER\tADDRESS\tALIVE\tLEADS")
			brokers := md.GetBrokers()
			sort.Slice(brokers, func(i, j int) bool { return brokers[i].GetId() < brokers[j].GetId() })
			for _, b := range brokers {
				// Registered brokers are alive: a registration lives on the
				// broker's etcd session lease.
				fmt.Fprintf(w, "%d\t%s\tyes\t%d\n", b.GetId(), b.GetAddress(), led[b.GetId()])
			}
			if n := led[-1]; n > 0 {
				fmt.Fprintf(w, "-\t(no leader)\t-\t%d\n", n)
			}
			_ = w.Flush()
			fmt.Fprintln(out)
			w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOPIC\tPARTITION\tLEADER\tEPOCH")
			for _, t := range md.GetTopics() {
				for _, p := range t.GetPartitions() {
					leader := fmt.Sprint(p.GetLeaderId())
					if p.GetLeaderId() < 0 {
						leader = "none"
					}
					fmt.Fprintf(w, "%s\t%d\t%s\t%d\n", t.GetName(), p.GetPartition(), leader, p.GetLeaderEpoch())
				}
			}
			return w.Flush()
		}),
	}
	addBrokerFlag(status, &broker)
	cmd.AddCommand(status)
	return cmd
}
