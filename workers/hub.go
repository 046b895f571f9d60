// Package workers wires the hub's Temporal worker: it owns the hub's libp2p
// host (where nodes register) and runs the workflows and activities.
package workers

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/minio/minio-go/v7"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"golang.org/x/time/rate"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/lifecycle"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/ontology"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/schemas"
	"github.com/syndb/federation/workflows"
)

// Hub is `syndb worker`: the hub's libp2p host (where nodes register), the
// peer access sync, the Temporal worker and the monitor it keeps running.
//
// NewHub builds and validates everything that can fail before anything
// starts; Run starts the parts in order and, when its context ends or
// Shutdown is called, stops them in reverse order; Shutdown returns once Run
// has returned, that is when every goroutine the hub started is gone.
type Hub struct {
	cfg     config.Worker
	log     *slog.Logger
	key     crypto.PrivKey
	psk     []byte
	boot    []peer.AddrInfo
	relays  []peer.AddrInfo
	migs    []migrate.Migration
	onto    *ontology.Ontology
	breaker health.Config
	s3      *minio.Client
	// punches records the nodes hole punching reached, for path reports.
	punches p2p.Punches

	run lifecycle.Once // Run starts once; Shutdown waits for it
}

// NewHub validates cfg and builds the hub: it reads the key, the embedded
// migrations and ontology, and builds the object-store client. It starts
// nothing: no goroutine, no listener, no connection.
func NewHub(cfg config.Worker, log *slog.Logger) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	h := &Hub{cfg: cfg, log: log, breaker: cfg.Health.Breaker()}
	if err := h.breaker.Validate(); err != nil {
		return nil, fmt.Errorf("health settings: %w", err)
	}
	var err error
	if h.psk, err = config.DecodePSK(cfg.PSK); err != nil {
		return nil, err
	}
	if h.boot, err = p2p.ParseAddrInfos(cfg.Bootstrap); err != nil {
		return nil, fmt.Errorf("SYNDB_P2P_BOOTSTRAP: %w", err)
	}
	if h.relays, err = p2p.ParseAddrInfos(cfg.Relays); err != nil {
		return nil, fmt.Errorf("SYNDB_P2P_RELAYS: %w", err)
	}
	if h.migs, err = schemas.ClickHouseMigrations(); err != nil {
		return nil, err
	}
	if h.onto, err = ontology.Embedded(); err != nil {
		return nil, err
	}
	if h.s3, err = newS3(cfg.S3); err != nil {
		return nil, err
	}
	if h.key, err = p2p.LoadOrCreateKey(cfg.KeyFile); err != nil {
		return nil, err
	}
	return h, nil
}

// RunHub runs `syndb worker` until ctx ends: NewHub, then Run.
func RunHub(ctx context.Context, cfg config.Worker, log *slog.Logger) error {
	h, err := NewHub(cfg, log)
	if err != nil {
		return err
	}
	return h.Run(ctx)
}

// stack holds the stop functions of the parts started so far; stop runs
// them in reverse order.
type stack []func()

func (s *stack) push(f func()) { *s = append(*s, f) }

func (s stack) stop() {
	for i := len(s) - 1; i >= 0; i-- {
		s[i]()
	}
}

// Run starts the hub and runs it until ctx ends or Shutdown is called; then
// it stops the parts in reverse order (the Temporal worker first, finishing
// in-flight activities; then the registrations' catch-ups, the Temporal
// client, discovery, the access sync and relay reservations, the libp2p
// host, the hub warehouse, PostgreSQL) and
// returns when they are all gone. A clean stop returns nil, also when the
// stop came while the hub was still starting.
func (h *Hub) Run(ctx context.Context) error {
	ctx, end, err := h.run.Begin(ctx)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	defer end()

	var parts stack
	defer func() { parts.stop() }() // the parts started by then, not now
	if err := h.start(ctx, &parts); err != nil {
		return lifecycle.StartErr(ctx, h.log, err)
	}
	<-ctx.Done()
	h.log.Info("hub worker stopping")
	return nil
}

// Shutdown stops a running hub and returns when Run has returned, so every
// goroutine the hub started is gone. It is safe to call more than once, and
// before Run (Run then refuses to start).
func (h *Hub) Shutdown() {
	h.run.Shutdown()
}

// start opens and starts every part in order, pushing each one's stop.
func (h *Hub) start(ctx context.Context, parts *stack) error {
	st, err := store.Open(ctx, h.cfg.Postgres.DSN)
	if err != nil {
		return err
	}
	parts.push(st.Close)
	wh, err := clickhouse.Open(ctx, h.cfg.ClickHouse)
	if err != nil {
		return fmt.Errorf("hub warehouse: %w", err)
	}
	parts.push(func() { _ = wh.Close() })
	ph, disc, access, err := h.startP2P(ctx, st, parts)
	if err != nil {
		return err
	}
	tc, err := client.Dial(client.Options{
		HostPort:  h.cfg.Temporal.Address,
		Namespace: h.cfg.Temporal.Namespace,
		Logger:    tlog.NewStructuredLogger(h.log.With("component", "temporal")),
	})
	if err != nil {
		return fmt.Errorf("connect temporal at %s: %w", h.cfg.Temporal.Address, err)
	}
	parts.push(tc.Close)
	if err := workflows.EnsureSearchAttributes(ctx, tc, h.cfg.Temporal.Namespace); err != nil {
		return err
	}
	catchUp := newCatchUp(st, tc, h.onto.Version, h.log)
	parts.push(catchUp.Close)
	reg := &Registrar{store: st, target: len(h.migs), log: h.log, conns: ph.Network().ConnsToPeer,
		refreshAccess: func(ctx context.Context) {
			if err := access.load(ctx); err != nil {
				h.log.Warn("refresh peer access", "err", err)
			}
		}, registered: catchUp.registered}
	// The gater rate-limits strangers' registrations and closes a
	// stranger's connection after a refused one.
	p2p.Handle(ph, p2p.Register, h.log, access.gater, reg.Handle)
	if h.cfg.GatewayAddr != "" {
		gw, err := p2p.StartCHGateway(ctx, ph, p2p.CHGatewayConfig{Addr: h.cfg.GatewayAddr, Resolve: newGatewayRoutes(st, access.gater).resolve,
			Finder: disc, Password: h.cfg.GatewayPassword}, h.log)
		if err != nil {
			return err
		}
		parts.push(func() { _ = gw.Close() })
	}
	for _, a := range ph.Addrs() {
		h.log.Info("hub libp2p listening", "addr", fmt.Sprintf("%s/p2p/%s", a, ph.ID()))
	}

	if h.cfg.DebugAddr != "" {
		stopDebug, err := startDebug(ctx, h.cfg.DebugAddr, h.log)
		if err != nil {
			return err
		}
		parts.push(stopDebug)
	}
	w := worker.New(tc, workflows.TaskQueue, worker.Options{
		MaxConcurrentActivityTaskPollers: h.cfg.ActivityPollers,
		MaxConcurrentWorkflowTaskPollers: h.cfg.WorkflowPollers,
	})
	Register(w, h.activities(st, wh, p2p.NewClient(ph, disc).WithPunches(&h.punches), tc))
	if err := w.Start(); err != nil {
		return fmt.Errorf("start temporal worker: %w", err)
	}
	parts.push(w.Stop)
	if _, err := workflows.StartHealthMonitor(ctx, tc, workflows.HealthMonitorParams{Interval: h.cfg.Health.Interval, Breaker: h.breaker}); err != nil {
		return err
	}
	if err := workflows.EnsureCatalogSchedule(ctx, tc, h.cfg.CatalogInterval); err != nil {
		return err
	}
	if err := workflows.EnsureBenchmarkSchedule(ctx, tc, h.cfg.BenchmarkInterval); err != nil {
		return err
	}
	h.log.Info("hub worker running", "task_queue", workflows.TaskQueue, "peer_id", ph.ID(), "schema_target", len(h.migs),
		"bootstrap", len(h.boot), "mdns", h.cfg.MDNS, "relays", len(h.relays), "relay_service", h.cfg.RelayService)
	return nil
}

// startP2P starts the hub's libp2p host, discovery (advertising the hub),
// the relay reservations and the access sync, and returns the host, the
// discovery and the access sync.
func (h *Hub) startP2P(ctx context.Context, st *store.Store, parts *stack) (host.Host, *p2p.Discovery, *accessSync, error) {
	cfg := h.cfg
	limit := p2p.DefaultStrangerLimit
	if cfg.RegisterPerIP > 0 {
		limit.PerIP = rate.Limit(cfg.RegisterPerIP)
	}
	if cfg.RegisterIPBurst > 0 {
		limit.IPBurst = cfg.RegisterIPBurst
	}
	gater := p2p.NewGaterWith(limit)
	ph, err := p2p.NewHost(p2p.HostConfig{
		Key: h.key, Listen: cfg.Listen, Gater: gater, PSK: h.psk, Reachability: cfg.Reachability, Relays: h.relays, MaxConns: cfg.MaxConns, PreferTCP: cfg.PreferTCP(),
		Punches: &h.punches, RelayService: cfg.RelayService, RelayLimit: p2p.RelayLimit{Duration: cfg.RelayMaxDuration, Data: cfg.RelayMaxData},
	})
	if err != nil {
		return nil, nil, nil, err
	}
	parts.push(func() {
		if err := ph.Close(); err != nil {
			h.log.Warn("close libp2p host", "err", err)
		}
	})
	p2pCtx, stopP2P := context.WithCancel(ctx)
	var wg sync.WaitGroup
	parts.push(func() { stopP2P(); wg.Wait() })
	// Strangers never enter the hub's DHT routing table (nor may they use
	// the DHT: the gater opens only Register to them).
	disc, err := p2p.StartDiscovery(p2pCtx, ph, p2p.DiscoveryConfig{Bootstrap: h.boot, Server: true, MDNS: cfg.MDNS,
		RoutingFilter: gater.Known}, h.log)
	if err != nil {
		return nil, nil, nil, err
	}
	parts.push(func() {
		stopP2P()
		if err := disc.Close(); err != nil {
			h.log.Warn("stop discovery", "err", err)
		}
	})
	disc.Advertise(p2pCtx, p2p.HubNamespace)
	if len(h.relays) > 0 {
		wg.Go(func() { p2p.KeepReservations(p2pCtx, ph, h.relays, h.log) })
	}
	infra := map[peer.ID]bool{}
	for _, ai := range append(append([]peer.AddrInfo{}, h.boot...), h.relays...) {
		infra[ai.ID] = true
	}
	access := &accessSync{store: st, gater: gater, host: ph, infra: infra, log: h.log}
	if err := access.load(ctx); err != nil {
		return nil, nil, nil, err
	}
	wg.Go(func() { access.run(p2pCtx) })
	return ph, disc, access, nil
}
