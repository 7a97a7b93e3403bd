// Command strata is the Strata broker and its command-line client.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "strata: "+errorLine(err))
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "strata",
		Short:         "Strata: a tiered-storage event-streaming broker",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyConfig(cmd)
		},
	}
	root.PersistentFlags().String("config", "", "YAML file of flag values (keys are flag names; env STRATA_CONFIG)")
	root.AddCommand(newServeCmd(), newTopicCmd(), newProduceCmd(), newConsumeCmd(), newBenchCmd(), newTierCmd(), newClusterCmd(), newGroupCmd())
	return root
}

// errorLine renders err as one line: a gRPC status as "CODE: message".
func errorLine(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Code().String() + ": " + oneLine(st.Message())
	}
	var st interface{ GRPCStatus() *status.Status }
	if errors.As(err, &st) {
		s := st.GRPCStatus()
		return s.Code().String() + ": " + oneLine(err.Error())
	}
	return oneLine(err.Error())
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
