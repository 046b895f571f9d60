// Package workers wires the hub's Temporal worker: it owns the hub's libp2p
// host (where nodes register) and runs the workflows and activities.
package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/internal/chx"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/ontology"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/schemas"
	"github.com/syndb/federation/workflows"
)

// Register registers every workflow and activity on w under its explicit name.
func Register(w worker.Registry, schema *activities.Schema, hl *activities.Health) {
	workflows.Register(w)
	w.RegisterActivityWithOptions(hl.HealthSweep, activity.RegisterOptions{Name: domain.HealthSweepName})
	w.RegisterActivityWithOptions(hl.RecordHealth, activity.RegisterOptions{Name: domain.RecordHealthName})
	w.RegisterActivityWithOptions(schema.ApplyHubSchema, activity.RegisterOptions{Name: domain.ApplyHubSchemaName})
	w.RegisterActivityWithOptions(schema.ListSyncTargets, activity.RegisterOptions{Name: domain.ListSyncTargetsName})
	w.RegisterActivityWithOptions(schema.SyncNodeSchema, activity.RegisterOptions{Name: domain.SyncNodeSchemaName})
}

// RunHub runs `syndb worker` until ctx ends, then stops in order: the worker
// (finishing in-flight activities), the libp2p host, the connections.
func RunHub(ctx context.Context, cfg config.Worker, log *slog.Logger) (err error) {
	migs, err := schemas.ClickHouseMigrations()
	if err != nil {
		return err
	}
	onto, err := ontology.Embedded()
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Postgres.DSN)
	if err != nil {
		return err
	}
	defer st.Close()
	wh, err := chx.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return fmt.Errorf("hub warehouse: %w", err)
	}
	defer func() { _ = wh.Close() }()

	key, err := p2p.LoadOrCreateKey(cfg.KeyFile)
	if err != nil {
		return err
	}
	psk, err := config.DecodePSK(cfg.PSK)
	if err != nil {
		return err
	}
	boot, err := p2p.ParseAddrInfos(cfg.Bootstrap)
	if err != nil {
		return fmt.Errorf("SYNDB_P2P_BOOTSTRAP: %w", err)
	}
	relays, err := p2p.ParseAddrInfos(cfg.Relays)
	if err != nil {
		return fmt.Errorf("SYNDB_P2P_RELAYS: %w", err)
	}
	infra := map[peer.ID]bool{}
	for _, ai := range append(boot, relays...) {
		infra[ai.ID] = true
	}
	gater := p2p.NewGater()
	h, err := p2p.NewHost(p2p.HostConfig{
		Key: key, Listen: cfg.Listen, Gater: gater, PSK: psk, Reachability: cfg.Reachability, Relays: relays, MaxConns: cfg.MaxConns,
		RelayService: cfg.RelayService, RelayLimit: p2p.RelayLimit{Duration: cfg.RelayMaxDuration, Data: cfg.RelayMaxData},
	})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := h.Close(); cerr != nil {
			log.Warn("close libp2p host", "err", cerr)
		}
	}()
	p2pCtx, stopP2P := context.WithCancel(ctx)
	defer stopP2P()
	// Strangers never enter the hub's DHT routing table (nor may they use
	// the DHT: the gater opens only Register to them).
	disc, err := p2p.StartDiscovery(p2pCtx, h, p2p.DiscoveryConfig{Bootstrap: boot, Server: true, MDNS: cfg.MDNS,
		RoutingFilter: gater.Known}, log)
	if err != nil {
		return err
	}
	defer func() {
		stopP2P()
		if cerr := disc.Close(); cerr != nil {
			log.Warn("stop discovery", "err", cerr)
		}
	}()
	disc.Advertise(p2pCtx, p2p.HubNamespace)
	if len(relays) > 0 {
		go p2p.KeepReservations(p2pCtx, h, relays, log)
	}
	access := &accessSync{store: st, gater: gater, host: h, infra: infra, log: log}
	if err := access.load(ctx); err != nil {
		return err
	}
	accessCtx, stopAccess := context.WithCancel(ctx)
	accessDone := make(chan struct{})
	go func() { defer close(accessDone); access.run(accessCtx) }()
	defer func() { stopAccess(); <-accessDone }()
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
	catchUp := newCatchUp(st, tc, onto.Version, log)
	defer catchUp.Close()

	reg := &Registrar{store: st, target: len(migs), log: log, conns: h.Network().ConnsToPeer, enrolled: func(ctx context.Context) {
		if err := access.load(ctx); err != nil {
			log.Warn("refresh peer access", "err", err)
		}
	}, registered: catchUp.registered}
	// The gater rate-limits strangers' registrations and closes a
	// stranger's connection after a refused one.
	p2p.Handle(h, p2p.Register, log, gater, reg.Handle)
	for _, a := range h.Addrs() {
		log.Info("hub libp2p listening", "addr", fmt.Sprintf("%s/p2p/%s", a, h.ID()))
	}

	nodes := p2p.NewClient(h, disc)
	startCatchUp := func(ctx context.Context, node string, target int) error {
		_, err := workflows.StartSchemaCatchUp(ctx, tc, node, target)
		return err
	}
	hl := activities.NewHealth(st, nodes, startCatchUp,
		activities.HealthOptions{Concurrency: cfg.Health.Concurrency, PingTimeout: cfg.Health.PingTimeout}, log)
	w := worker.New(tc, workflows.TaskQueue, worker.Options{})
	Register(w, activities.NewSchema(st, wh, nodes, migs, log), hl)
	registerCatalog(w, activities.NewCatalog(st, nodes), activities.NewOntology(st, nodes, onto))
	s3, err := newS3(cfg.S3)
	if err != nil {
		return err
	}
	jobs := activities.NewJobs(activities.JobsDeps{Store: st, Nodes: nodes, Results: s3, Bucket: cfg.S3.ResultsBucket,
		Migrations: migs, Log: log})
	etl := activities.NewEtl(activities.EtlDeps{Store: st, Nodes: nodes, Staging: s3, StagingBucket: cfg.S3.StagingBucket,
		Migrations: migs, Warehouse: wh,
		RefreshCatalog: func(ctx context.Context, node string) error {
			_, err := workflows.StartNodeCatalogSync(ctx, tc, node, false)
			return err
		},
		Limits: activities.UploadLimits{MaxUploadBytes: cfg.ETL.MaxUploadBytes, MaxCellBytes: cfg.ETL.MaxCellBytes,
			MaxRowBytes: cfg.ETL.MaxRowBytes, MaxPageBytes: cfg.ETL.MaxPageBytes, MaxColumnChunkBytes: cfg.ETL.MaxColumnChunkBytes,
			MinRowBytes: cfg.ETL.MinRowBytes, MaxBatchBytes: cfg.ETL.MaxBatchBytes}})
	registerJobs(w, jobs, etl)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start temporal worker: %w", err)
	}
	breaker := health.Config{
		SlowLatency: cfg.Health.Slow, FailuresToEject: cfg.Health.Failures, SuccessesToRestore: cfg.Health.Successes,
		ProbeBackoff: cfg.Health.ProbeBackoff, MaxProbeBackoff: cfg.Health.MaxProbeBackoff,
	}
	if err := breaker.Validate(); err != nil {
		w.Stop()
		return fmt.Errorf("health settings: %w", err)
	}
	if _, err := workflows.StartHealthMonitor(ctx, tc, workflows.HealthMonitorParams{Interval: cfg.Health.Interval, Breaker: breaker}); err != nil {
		w.Stop()
		return err
	}
	if err := workflows.EnsureCatalogSchedule(ctx, tc, cfg.CatalogInterval); err != nil {
		w.Stop()
		return err
	}
	log.Info("hub worker running", "task_queue", workflows.TaskQueue, "peer_id", h.ID(), "schema_target", len(migs),
		"bootstrap", len(boot), "mdns", cfg.MDNS, "relays", len(relays), "relay_service", cfg.RelayService)
	<-ctx.Done()
	log.Info("hub worker stopping")
	w.Stop()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}
