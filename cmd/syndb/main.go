// Command syndb is the SynDB Federation binary: the hub's API and worker, the
// node agent, and the tools around them.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "syndb:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "syndb",
		Short:         "SynDB Federation: one warehouse over many labs",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// The services take their settings from their environment only; the
	// tools an operator points at the dev federation also read the settings
	// `syndb dev` wrote.
	root.AddCommand(apiCmd(), workerCmd(), nodeCmd(), relayCmd(),
		devTool(seedCmd()), devTool(apikeyCmd()), devTool(schemaCmd()), devTool(replayCmd()),
		devCmd(), versionCmd())
	return root
}

// devTool makes cmd (and its subcommands) read config.DevEnvFile, when it
// exists, before its own settings: a tool run from the repository reaches the
// dev federation wherever `syndb dev` placed it.
func devTool(cmd *cobra.Command) *cobra.Command {
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error { return config.LoadDevEnv() }
	return cmd
}

// logger returns the process logger: text for people, JSON when SYNDB_LOG_FORMAT=json.
func logger(component string) *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("SYNDB_LOG_LEVEL") == "debug" {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if os.Getenv("SYNDB_LOG_FORMAT") == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(h).With("component", component)
}

// quiet turns a clean shutdown into success.
func quiet(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "syndb", version.String())
		},
	}
}
