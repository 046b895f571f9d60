package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/seed"
	"github.com/syndb/federation/nodeagent"
	"github.com/syndb/federation/schemas"
	"github.com/syndb/federation/workers"
)

func apiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "api",
		Short: "Run the hub's HTTP API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load[config.API]()
			if err != nil {
				return err
			}
			return quiet(api.Run(cmd.Context(), cfg, logger("api")))
		},
	}
}

func workerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run the hub's Temporal worker and libp2p host",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load[config.Worker]()
			if err != nil {
				return err
			}
			return quiet(workers.RunHub(cmd.Context(), cfg, logger("worker")))
		},
	}
}

func relayCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "relay",
		Short: "Run a federation relay: DHT bootstrap peer and circuit relay for peers behind NAT",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load[config.Relay]()
			if err != nil {
				return err
			}
			return quiet(workers.RunRelay(cmd.Context(), cfg, logger("relay")))
		},
	}
}

func nodeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "node",
		Short: "Run a lab's node agent beside its ClickHouse",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load[config.Node]()
			if err != nil {
				return err
			}
			a, err := nodeagent.New(cfg, logger("node"))
			if err != nil {
				return err
			}
			return quiet(a.Run(cmd.Context()))
		},
	}
}

func seedCmd() *cobra.Command {
	var opts seed.Options
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Fill a warehouse (SYNDB_CLICKHOUSE_*) with synthetic SynDB datasets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load[config.ClickHouse]()
			if err != nil {
				return err
			}
			migs, err := schemas.ClickHouseMigrations()
			if err != nil {
				return err
			}
			conn, err := clickhouse.Open(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer func() { _ = conn.Close() }()
			res, err := seed.Seed(cmd.Context(), conn, migs, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "seeded %s: %d datasets created, %d already present, %d rows; schema %d -> %d\n",
				cfg.Addr, res.Created, res.Skipped, res.Rows, res.SchemaFrom, res.SchemaTo)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Node, "node", "lab", "lab name used in dataset names and IDs")
	cmd.Flags().IntVar(&opts.Datasets, "datasets", 3, "datasets to create")
	cmd.Flags().IntVar(&opts.Rows, "rows", 200, "rows per compartment table per dataset")
	return cmd
}
