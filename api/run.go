package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/keyauth"
	"github.com/syndb/federation/internal/registry"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/schemas"
	"github.com/syndb/federation/workflows"
)

// registryResync bounds how stale the API's registry snapshot can be when
// a change notification is missed.
const registryResync = 30 * time.Second

// Run opens the API's dependencies, serves until ctx ends and closes them.
func Run(ctx context.Context, cfg config.API, log *slog.Logger) error {
	// A certificate that cannot serve stops the API before it opens anything.
	var cert *Certificate
	if cfg.TLS.Enabled() {
		c, err := LoadCertificate(cfg.TLS)
		if err != nil {
			return err
		}
		cert = c
	}
	migs, err := schemas.ClickHouseMigrations()
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Postgres.DSN)
	if err != nil {
		return err
	}
	defer st.Close()
	wh, err := clickhouse.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return fmt.Errorf("hub warehouse: %w", err)
	}
	defer func() { _ = wh.Close() }()
	// Every federated query, and each probe of a node after a failed one,
	// holds a connection of the query user: the pool is sized by the query
	// settings.
	qwh, err := clickhouse.Dial(ctx, cfg.QueryClickHouse(), clickhouse.Pool{MaxOpen: cfg.Query.MaxConns, MaxIdle: cfg.Query.MaxConns / 4,
		Wait: cfg.Query.ConnWait})
	if err != nil {
		return fmt.Errorf("hub warehouse as query user %s: %w", cfg.QueryUser, err)
	}
	defer func() { _ = qwh.Close() }()
	if err := ensureBuckets(ctx, cfg.S3); err != nil {
		return err
	}
	tc, err := client.Dial(client.Options{
		HostPort:  cfg.Temporal.Address,
		Namespace: cfg.Temporal.Namespace,
		Logger:    tlog.NewStructuredLogger(log.With("component", "temporal")),
	})
	if err != nil {
		return fmt.Errorf("connect temporal at %s: %w", cfg.Temporal.Address, err)
	}
	defer tc.Close()
	if err := workflows.EnsureSearchAttributes(ctx, tc, cfg.Temporal.Namespace); err != nil {
		return err
	}
	reg, err := registry.New(ctx, st, log)
	if err != nil {
		return err
	}
	regCtx, stopReg := context.WithCancel(ctx)
	regDone := make(chan struct{})
	go func() { defer close(regDone); reg.Run(regCtx, st, registryResync) }()
	defer func() { stopReg(); <-regDone }()
	objects, err := minio.New(cfg.S3.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.S3.AccessKey, cfg.S3.SecretKey, ""), Secure: cfg.S3.UseTLS})
	if err != nil {
		return fmt.Errorf("s3 client for %s: %w", cfg.S3.Endpoint, err)
	}
	keys, err := keyauth.New(st, cfg.Auth, log.With("component", "keyauth"))
	if err != nil {
		return err
	}
	keys.Start(ctx)
	// Stopped after the servers, so the last requests' key uses are written.
	defer func() {
		if err := keys.Close(); err != nil {
			log.Warn("recording the last api key uses failed", "err", err)
		}
	}()
	srv := New(cfg, Deps{Store: st, Jobs: st, Objects: objects, Registry: reg, Temporal: tc, Warehouse: wh, Query: qwh, Log: log, SchemaHead: len(migs), Migrations: migs,
		Catalog: st, Queries: st, Audit: st, Benchmarks: st, TLS: cert, Keys: keys, Meshes: st})
	// HTTP and Flight together: either failing stops both.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if cert != nil {
		reloaded := make(chan struct{})
		go func() { defer close(reloaded); cert.ReloadOnHangup(ctx, log) }()
		defer func() { stop(); <-reloaded }()
	}
	flightErr := make(chan error, 1)
	go func() {
		err := srv.ServeFlight(ctx)
		stop()
		flightErr <- err
	}()
	httpErr := srv.Serve(ctx)
	stop()
	return errors.Join(httpErr, <-flightErr)
}

// ensureBuckets creates the hub's S3 buckets (job results, staged uploads,
// meshes).
func ensureBuckets(ctx context.Context, c config.S3) error {
	mc, err := minio.New(c.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""), Secure: c.UseTLS})
	if err != nil {
		return fmt.Errorf("s3 client for %s: %w", c.Endpoint, err)
	}
	for _, b := range []string{c.ResultsBucket, c.StagingBucket, c.MeshesBucket} {
		ok, err := mc.BucketExists(ctx, b)
		if err != nil {
			return fmt.Errorf("s3 %s: bucket %s: %w", c.Endpoint, b, err)
		}
		if ok {
			continue
		}
		if err := mc.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
			return fmt.Errorf("s3 %s: create bucket %s: %w", c.Endpoint, b, err)
		}
	}
	return nil
}
