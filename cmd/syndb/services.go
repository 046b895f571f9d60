package main

import (
	"github.com/spf13/cobra"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/nodeagent"
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
