// Package nodeagent is `syndb node`: the small agent beside a lab's ClickHouse.
// It registers with the hub over libp2p and answers the hub's messages
// (HealthPing, SchemaSync, DatasetCatalogRequest, GetFlightEndpoint,
// AnalyticsQuery, OntologySync) against the local warehouse. It shares only the
// internal protocol packages with the hub, never hub code.
package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/syndb/federation/internal/chx"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/fedpb"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/version"
)

// Agent is a running node agent.
type Agent struct {
	cfg  config.Node
	log  *slog.Logger
	key  crypto.PrivKey
	host host.Host
	hub  peer.AddrInfo

	chMu sync.Mutex
	ch   driver.Conn

	// syncMu serialises migrations of the local warehouse.
	syncMu sync.Mutex
	// ontoMu serialises ontology writes.
	ontoMu sync.Mutex

	registered chan struct{}
	regOnce    sync.Once
	lastErr    atomic.Pointer[error]
	wg         sync.WaitGroup
}

// New starts the agent's libp2p host and handlers. Run registers with the hub.
func New(cfg config.Node, log *slog.Logger) (*Agent, error) {
	hubAddr, err := ma.NewMultiaddr(cfg.Hub)
	if err != nil {
		return nil, fmt.Errorf("SYNDB_HUB_ADDR %q is not a multiaddr: %w", cfg.Hub, err)
	}
	hub, err := peer.AddrInfoFromP2pAddr(hubAddr)
	if err != nil {
		return nil, fmt.Errorf("SYNDB_HUB_ADDR %q must end in /p2p/<hub peer ID>: %w", cfg.Hub, err)
	}
	key, err := p2p.LoadOrCreateKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	psk, err := config.DecodePSK(cfg.PSK)
	if err != nil {
		return nil, err
	}
	h, err := p2p.NewHost(p2p.HostConfig{Key: key, Listen: cfg.Listen, PSK: psk})
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: log.With("node", cfg.Name), key: key, host: h, hub: *hub, registered: make(chan struct{})}
	allow := func(p peer.ID) bool { return p == a.hub.ID }
	p2p.Handle(h, p2p.HealthPing, a.log, allow, a.handlePing)
	p2p.Handle(h, p2p.SchemaSync, a.log, allow, a.handleSchemaSync)
	p2p.Handle(h, p2p.DatasetCatalog, a.log, allow, a.handleCatalog)
	p2p.Handle(h, p2p.FlightEndpoint, a.log, allow, a.handleFlightEndpoint)
	p2p.Handle(h, p2p.AnalyticsQuery, a.log, allow, a.handleAnalytics)
	p2p.Handle(h, p2p.OntologySync, a.log, allow, a.handleOntologySync)
	a.log.Info("node agent listening", "peer_id", h.ID(), "addrs", h.Addrs(), "hub", hub.ID)
	return a, nil
}

// PeerID returns the agent's libp2p identity.
func (a *Agent) PeerID() peer.ID { return a.host.ID() }

// Registered is closed once the hub first accepted the agent's registration.
func (a *Agent) Registered() <-chan struct{} { return a.registered }

// LastError returns the error of the latest failed registration attempt,
// or nil when the latest attempt succeeded (or none was made).
func (a *Agent) LastError() error {
	if p := a.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Run registers with the hub, and again whenever the connection to the hub
// is lost, until ctx ends; then it closes the agent.
func (a *Agent) Run(ctx context.Context) error {
	defer a.close()
	lost := make(chan struct{}, 1)
	a.host.Network().Notify(&network.NotifyBundle{
		DisconnectedF: func(n network.Network, c network.Conn) {
			if c.RemotePeer() == a.hub.ID && n.Connectedness(a.hub.ID) != network.Connected {
				select {
				case lost <- struct{}{}:
				default:
				}
			}
		},
	})
	for {
		if err := a.registerWithBackoff(ctx); err != nil {
			return nil //nolint:nilerr // only ctx ends the loop: a clean shutdown
		}
		select {
		case <-ctx.Done():
			return nil
		case <-lost:
			a.log.Warn("connection to hub lost; registering again")
		}
	}
}

func (a *Agent) registerWithBackoff(ctx context.Context) error {
	delay := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := a.register(ctx)
		if err == nil {
			a.lastErr.Store(nil)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.lastErr.Store(&err)
		if p2p.IsCode(err, p2p.CodeUnauthorized) {
			// The hub refused us: only an operator can fix it (a new token,
			// re-enrollment), so say why loudly and retry slowly.
			delay = max(delay, 30*time.Second)
			a.log.Error("hub refused registration", "reason", err, "retry_in", delay)
		} else {
			level := slog.LevelWarn
			if attempt == 1 {
				level = slog.LevelInfo
			}
			a.log.Log(ctx, level, "registration with hub failed; retrying", "attempt", attempt, "retry_in", delay, "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, 30*time.Second)
	}
}

func (a *Agent) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := a.host.Connect(ctx, a.hub); err != nil {
		return fmt.Errorf("connect to hub %s: %w", a.hub.ID, err)
	}
	v := 0
	if conn, err := a.conn(ctx); err == nil {
		if v, err = migrate.Version(ctx, conn); err != nil {
			a.log.Warn("cannot read schema ledger", "err", err)
		}
	}
	addrs := make([]string, 0, len(a.host.Addrs()))
	for _, m := range a.host.Addrs() {
		addrs = append(addrs, m.String())
	}
	req := &fedpb.RegisterRequest{
		Name: a.cfg.Name, Addrs: addrs, FlightAddr: a.cfg.FlightAddr, ClickhouseAddr: a.cfg.ClickHousePublicAddr,
		SchemaVersion: int32(v), AgentVersion: version.String(), EnrollmentToken: a.cfg.EnrollmentToken,
	}
	var resp fedpb.RegisterResponse
	if err := p2p.Call(ctx, a.host, a.hub.ID, p2p.Register, req, &resp); err != nil {
		return err
	}
	a.log.Info("registered with hub", "hub", a.hub.ID, "schema_version", v, "hub_target_schema", resp.GetTargetSchema())
	a.regOnce.Do(func() { close(a.registered) })
	return nil
}

// conn returns the ClickHouse connection, opening it on first use so the
// agent starts (and answers pings) while its warehouse is down.
func (a *Agent) conn(ctx context.Context) (driver.Conn, error) {
	a.chMu.Lock()
	defer a.chMu.Unlock()
	if a.ch != nil {
		return a.ch, nil
	}
	c, err := chx.Open(ctx, a.cfg.ClickHouse)
	if err != nil {
		return nil, err
	}
	a.ch = c
	return c, nil
}

func (a *Agent) close() {
	if err := a.host.Close(); err != nil {
		a.log.Warn("close libp2p host", "err", err)
	}
	a.wg.Wait()
	a.chMu.Lock()
	defer a.chMu.Unlock()
	if a.ch != nil {
		_ = a.ch.Close()
	}
	a.log.Info("node agent stopped")
}

func (a *Agent) handlePing(ctx context.Context, _ peer.ID, req *fedpb.HealthPingRequest) (*fedpb.HealthPingResponse, error) {
	resp := &fedpb.HealthPingResponse{Nonce: req.GetNonce(), Name: a.cfg.Name, AgentVersion: version.String()}
	conn, err := a.conn(ctx)
	var (
		took time.Duration
		v    int
	)
	if err == nil {
		took, err = chx.Ping(ctx, conn)
	}
	if err == nil {
		v, err = migrate.Version(ctx, conn)
	}
	if err != nil {
		resp.ClickhouseError = err.Error()
		return resp, nil
	}
	resp.ClickhouseOk, resp.ClickhouseLatency, resp.SchemaVersion = true, durationpb.New(took), int32(v)
	return resp, nil
}

func (a *Agent) handleSchemaSync(ctx context.Context, _ peer.ID, req *fedpb.SchemaSyncRequest) (*fedpb.SchemaSyncResponse, error) {
	ms := fedpb.ToMigrations(req.GetMigrations())
	if err := migrate.Verify(ms); err != nil {
		return nil, p2p.Errorf(p2p.CodeInvalid, "%v", err)
	}
	conn, err := a.conn(ctx)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "clickhouse: %v", err)
	}
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	res, err := migrate.Apply(ctx, conn, ms, int(req.GetTarget()))
	if errors.Is(err, migrate.ErrDrift) {
		a.log.Error("schema drift: refusing to migrate", "err", err)
		return nil, p2p.Errorf(p2p.CodeDrift, "%v", err)
	}
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "%v", err)
	}
	ledger, err := migrate.Ledger(ctx, conn)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "%v", err)
	}
	for _, m := range res.Applied {
		a.log.Info("migration applied", "version", m.Version, "name", m.Name, "took", m.Duration)
	}
	return &fedpb.SchemaSyncResponse{
		From: int32(res.From), To: int32(res.To), Applied: fedpb.FromApplied(res.Applied), Ledger: fedpb.FromApplied(ledger),
	}, nil
}
