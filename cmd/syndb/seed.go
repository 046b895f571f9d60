package main

import (
	"context"
	"fmt"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/spf13/cobra"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/seed"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/schemas"
)

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
			note, err := seedObjects(&opts)
			if err != nil {
				return err
			}
			res, err := seed.Seed(cmd.Context(), conn, migs, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "seeded %s: %d datasets created, %d already present, %d rows, %d meshes%s; schema %d -> %d\n",
				cfg.Addr, res.Created, res.Skipped, res.Rows, len(res.Meshes), note, res.SchemaFrom, res.SchemaTo)
			return recordSeedMeshes(cmd.Context(), res.Meshes)
		},
	}
	cmd.Flags().StringVar(&opts.Node, "node", "lab", "lab name used in dataset names and IDs")
	cmd.Flags().IntVar(&opts.Datasets, "datasets", 3, "datasets to create")
	cmd.Flags().IntVar(&opts.Rows, "rows", 200, "rows per compartment table per dataset")
	cmd.Flags().IntVar(&opts.MeshRows, "meshes", 10, "rows per compartment table per dataset that get a mesh in S3 (SYNDB_S3_*)")
	return cmd
}

// seedObjects points the seed at the hub's S3 when SYNDB_S3_* is set, and
// says so in a note otherwise (the seed then stores no meshes).
func seedObjects(opts *seed.Options) (string, error) {
	c, err := config.Load[config.S3]()
	if err != nil {
		opts.Objects = nil
		return " (no S3 configured: none stored)", nil //nolint:nilerr // S3 is optional for the seed
	}
	mc, err := minio.New(c.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""), Secure: c.UseTLS})
	if err != nil {
		return "", fmt.Errorf("s3 client for %s: %w", c.Endpoint, err)
	}
	opts.Objects, opts.MeshBucket = mc, c.MeshesBucket
	return "", nil
}

// recordSeedMeshes records the seeded meshes in the hub's PostgreSQL when
// SYNDB_POSTGRES_DSN is set, so its catalog counts them.
func recordSeedMeshes(ctx context.Context, meshes []seed.Mesh) error {
	c, err := config.Load[config.Postgres]()
	if err != nil || len(meshes) == 0 {
		return nil //nolint:nilerr // without a hub PostgreSQL there is nothing to record
	}
	st, err := store.Open(ctx, c.DSN)
	if err != nil {
		return err
	}
	defer st.Close()
	recs := make([]store.Mesh, len(meshes))
	for i, m := range meshes {
		recs[i] = store.MeshOf(m.Spec, m.Reading, "")
	}
	return st.RecordMeshes(ctx, recs)
}
