package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/schemastatus"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/schemas"
)

func schemaCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "schema", Short: "Inspect the federation's ClickHouse schema"}
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the hub's migrations and where the hub warehouse and every node stand (version, pending, drift)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load[config.API]()
			if err != nil {
				return err
			}
			migs, err := schemas.ClickHouseMigrations()
			if err != nil {
				return err
			}
			st, err := store.Open(cmd.Context(), cfg.Postgres.DSN)
			if err != nil {
				return err
			}
			defer st.Close()
			wh, err := clickhouse.Open(cmd.Context(), cfg.ClickHouse)
			if err != nil {
				return fmt.Errorf("hub warehouse: %w", err)
			}
			defer func() { _ = wh.Close() }()
			s, err := schemastatus.Read(cmd.Context(), st, wh, migs)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			printStatus(cmd, s)
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON (as GET /v1/federation/schema does)")
	cmd.AddCommand(status)
	return cmd
}

func printStatus(cmd *cobra.Command, s schemastatus.Status) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "hub migrations: %d   fleet target (latest sync): %d\n", s.Head, s.Target)
	hub := "ok"
	if s.Hub.Drift != nil {
		hub = fmt.Sprintf("DRIFT at v%d: %s", s.Hub.Drift.Version, s.Hub.Drift.Reason)
	}
	fmt.Fprintf(out, "hub warehouse: v%d, pending %s, %s\n\n", s.Hub.Version, versions(s.Hub.Pending), hub)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tVERSION\tSTATE\tPENDING\tHEALTH\tLAST SEEN\tDRIFT")
	for _, n := range s.Nodes {
		drift, seen := "-", "never"
		if n.Drift != nil {
			drift = fmt.Sprintf("v%d: %s", n.Drift.Version, n.Drift.Reason)
		}
		if !n.LastSeen.IsZero() {
			seen = time.Since(n.LastSeen).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Version, n.State, versions(n.Pending), n.Health, seen, drift)
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "\n%d synced, %d behind, %d in drift\n", s.Counts.Synced, s.Counts.Behind, s.Counts.Drift)
}

func versions(vs []int) string {
	if len(vs) == 0 {
		return "-"
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ",")
}
