package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/syndb/federation/workflows"
)

func replayCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "replay FILE...",
		Short: "Replay workflow histories against this build's workflow code and report nondeterminism",
		Long: "Replay workflow histories, exported with `temporal workflow show --workflow-id ID --output json > FILE`,\n" +
			"against the workflow code of this build. A history the code would not reproduce (a change that breaks\n" +
			"runs in flight) is reported with the first event that differs, and the command fails.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			log := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})))
			failed := 0
			for _, f := range files {
				r := worker.NewWorkflowReplayer()
				workflows.Register(r)
				if err := r.ReplayWorkflowHistoryFromJSONFile(log, f); err != nil {
					failed++
					fmt.Fprintf(cmd.OutOrStdout(), "FAIL  %s\n      %v\n", f, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "ok    %s\n", f)
			}
			if failed > 0 {
				return errors.New(plural(failed, "history does", "histories do") + " not replay (see above)")
			}
			return nil
		},
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
