// Package nodeagent is `syndb node`: the small agent beside a lab's ClickHouse.
// It registers with the hub over libp2p and answers the hub's messages
// (HealthPing, SchemaSync, DatasetCatalogRequest, GetFlightEndpoint,
// AnalyticsQuery, OntologySync, MeshMetrics) against the local warehouse. It shares only the
// internal protocol packages with the hub, never hub code.
package nodeagent

import (
	"context"
	"crypto/tls"
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
	"google.golang.org/grpc"

	"github.com/syndb/federation/internal/certpin"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/lifecycle"
	"github.com/syndb/federation/internal/p2p"
)

// Agent is a node agent. New builds it and validates its configuration;
// Run starts the libp2p host, discovery, the handlers and the Flight server
// and registers with the hub; Shutdown (or the end of Run's context) stops
// them and returns when every goroutine is gone.
type Agent struct {
	cfg    config.Node
	log    *slog.Logger
	key    crypto.PrivKey
	id     peer.ID
	psk    []byte
	boot   []peer.AddrInfo
	relays []peer.AddrInfo

	// host and disc are set by Run before any handler or registration uses them.
	host host.Host
	disc *p2p.Discovery

	// hub is the hub the agent answers: configured (address or ID), or
	// pinned when first discovered and accepted. hubID is read lock-free
	// by every handler.
	hubMu    sync.Mutex
	hub      peer.AddrInfo
	hubFixed bool // the address came from configuration
	hubID    atomic.Value
	// candidate is the first registration under way, with a hub trusted on
	// first use (nil when none is): that hub may call the node as soon as
	// it has accepted, before its answer has reached the node and the hub
	// is pinned, so its calls wait for the answer (hubOnly).
	candidate atomic.Pointer[pendingHub]

	chMu sync.Mutex
	ch   driver.Conn

	// flight serves the node's Arrow Flight service (flightserver.go).
	flight *grpc.Server
	// flightTLS, when set, is served on the Flight TCP listener, and
	// flightPin (its certificate's SHA-256) registered with the hub.
	flightTLS *tls.Config
	flightPin []byte

	// syncMu serialises migrations of the local warehouse.
	syncMu sync.Mutex
	// ontoMu serialises ontology writes.
	ontoMu sync.Mutex
	// meshMu serialises mesh writes: one mutation at a time.
	meshMu sync.Mutex

	registered chan struct{}
	regOnce    sync.Once
	lastErr    atomic.Pointer[error]
	wg         sync.WaitGroup

	// run lets Run start once and Shutdown wait for it.
	run lifecycle.Once
}

// New validates cfg and builds the agent: it parses the hub and peer
// addresses and reads (or creates) the identity key. It starts nothing: no
// goroutine, no listener, no connection.
func New(cfg config.Node, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	a := &Agent{cfg: cfg, log: log.With("node", cfg.Name), registered: make(chan struct{})}
	a.hubID.Store(peer.ID(""))
	switch {
	case cfg.Hub != "":
		infos, err := p2p.ParseAddrInfos([]string{cfg.Hub})
		if err != nil {
			return nil, fmt.Errorf("SYNDB_HUB_ADDR: %w", err)
		}
		a.pinHub(infos[0])
		a.hubFixed = true
	case cfg.HubID != "":
		id, err := peer.Decode(cfg.HubID)
		if err != nil {
			return nil, fmt.Errorf("SYNDB_HUB_ID %q: %w", cfg.HubID, err)
		}
		a.pinHub(peer.AddrInfo{ID: id})
	}
	var err error
	if a.boot, err = p2p.ParseAddrInfos(cfg.Bootstrap); err != nil {
		return nil, fmt.Errorf("SYNDB_P2P_BOOTSTRAP: %w", err)
	}
	if a.relays, err = p2p.ParseAddrInfos(cfg.Relays); err != nil {
		return nil, fmt.Errorf("SYNDB_P2P_RELAYS: %w", err)
	}
	if a.psk, err = config.DecodePSK(cfg.PSK); err != nil {
		return nil, err
	}
	if a.key, err = p2p.LoadOrCreateKey(cfg.KeyFile); err != nil {
		return nil, err
	}
	if a.id, err = peer.IDFromPrivateKey(a.key); err != nil {
		return nil, fmt.Errorf("peer ID of %s: %w", cfg.KeyFile, err)
	}
	if cfg.FlightTLSCert != "" {
		cert, pin, err := certpin.Load(cfg.FlightTLSCert, cfg.FlightTLSKey)
		if err != nil {
			return nil, fmt.Errorf("SYNDB_FLIGHT_TLS_CERT: %w", err)
		}
		a.flightTLS, a.flightPin = certpin.ServerConfig(cert), pin
	}
	return a, nil
}

// start starts the libp2p host, discovery, the Flight server and the
// handlers; on error it stops what it started.
func (a *Agent) start(ctx context.Context) error {
	var err error
	a.host, err = p2p.NewHost(p2p.HostConfig{Key: a.key, Listen: a.cfg.Listen, PSK: a.psk,
		Reachability: a.cfg.Reachability, Relays: a.relays, PreferTCP: a.cfg.PreferTCP()})
	if err != nil {
		return err
	}
	a.disc, err = p2p.StartDiscovery(ctx, a.host, p2p.DiscoveryConfig{Bootstrap: a.boot, MDNS: a.cfg.MDNS}, a.log)
	if err != nil {
		_ = a.host.Close()
		return err
	}
	if err := a.startFlight(); err != nil {
		a.close()
		return err
	}
	hubOnly := a.hubOnly(p2p.NewRefusalLog(a.log, refusalLogWindow))
	d := a.cfg.AnswerDelay
	p2p.Handle(a.host, p2p.HealthPing, a.log, hubOnly(p2p.HealthPing), delayed(d, a.handlePing))
	p2p.Handle(a.host, p2p.SchemaSync, a.log, hubOnly(p2p.SchemaSync), delayed(d, a.handleSchemaSync))
	p2p.Handle(a.host, p2p.DatasetCatalog, a.log, hubOnly(p2p.DatasetCatalog), delayed(d, a.handleCatalog))
	p2p.Handle(a.host, p2p.FlightEndpoint, a.log, hubOnly(p2p.FlightEndpoint), delayed(d, a.handleFlightEndpoint))
	p2p.Handle(a.host, p2p.AnalyticsQuery, a.log, hubOnly(p2p.AnalyticsQuery), delayed(d, a.handleAnalytics))
	p2p.Handle(a.host, p2p.OntologySync, a.log, hubOnly(p2p.OntologySync), delayed(d, a.handleOntologySync))
	p2p.Handle(a.host, p2p.MeshMetrics, a.log, hubOnly(p2p.MeshMetrics), delayed(d, a.handleMeshMetrics))
	a.serveFlightOverLibp2p(hubOnly(p2p.Spec{ID: p2p.FlightProtocol}))
	a.startCHGateway(hubOnly(chGatewaySpec))
	if d > 0 {
		a.log.Warn("every answer to the hub is held back", "delay", d)
	}
	a.log.Info("node agent listening", "peer_id", a.host.ID(), "addrs", a.host.Addrs(), "hub", a.HubID(),
		"bootstrap", len(a.boot), "mdns", a.cfg.MDNS, "relays", len(a.relays))
	return nil
}

// refusalLogWindow is how often, at most, the agent logs refused streams of
// one peer (each line counts the refusals since the previous one).
const refusalLogWindow = time.Minute

// hubOnly returns, per protocol, the guard that serves only the hub and
// logs refusals through refusals, so strangers cannot flood the log. A call
// of the hub a first registration is under way with waits until that hub
// has answered: it is served once the hub accepted the node (and is
// pinned), and refused otherwise, before any byte of it is read.
func (a *Agent) hubOnly(refusals *p2p.RefusalLog) func(p2p.Spec) p2p.Guard {
	return func(spec p2p.Spec) p2p.Guard {
		return p2p.AllowFunc(func(c network.Conn) error {
			p := c.RemotePeer()
			if a.isHub(p) {
				return nil
			}
			refusals.Refused(p, spec.ID)
			return p2p.Errorf(p2p.CodeUnauthorized, "peer %s is not allowed to use %s", p, spec.ID)
		})
	}
}

// pendingHub is a first registration under way with a hub candidate:
// decided is closed once the candidate has answered, after it is pinned
// when it accepted.
type pendingHub struct {
	id      peer.ID
	decided chan struct{}
}

// isHub reports whether p is the hub the agent answers. A call of the
// candidate of a registration under way waits for the registration's end,
// which its deadline bounds.
func (a *Agent) isHub(p peer.ID) bool {
	if hub := a.HubID(); hub != "" {
		return p == hub
	}
	cand := a.candidate.Load()
	if cand == nil || cand.id != p {
		return false
	}
	<-cand.decided
	return a.HubID() == p
}

// PeerID returns the agent's libp2p identity (known from New on).
func (a *Agent) PeerID() peer.ID { return a.id }

// HubID returns the peer ID of the hub the agent answers ("" until known).
func (a *Agent) HubID() peer.ID { return a.hubID.Load().(peer.ID) }

func (a *Agent) pinHub(ai peer.AddrInfo) {
	a.hubMu.Lock()
	defer a.hubMu.Unlock()
	a.hub = ai
	a.hubID.Store(ai.ID)
}

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

// Run starts the agent and registers with the hub, and again whenever the
// connection to the hub is lost, until ctx ends or Shutdown is called;
// meanwhile it keeps its relay reservations and its advertisement in the
// DHT. Then it stops everything it started and returns; a clean stop
// returns nil, also when the stop came while the agent was still starting.
func (a *Agent) Run(ctx context.Context) error {
	ctx, end, err := a.run.Begin(ctx)
	if err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	defer end()
	if err := a.start(ctx); err != nil {
		return lifecycle.StartErr(ctx, a.log, err)
	}
	defer a.close()
	if len(a.relays) > 0 {
		a.wg.Go(func() { p2p.KeepReservations(ctx, a.host, a.relays, a.log) })
	}
	a.disc.Advertise(ctx, p2p.ClusterNamespace(a.cfg.Name))
	lost := make(chan struct{}, 1)
	a.host.Network().Notify(&network.NotifyBundle{
		DisconnectedF: func(n network.Network, c network.Conn) {
			id := a.HubID()
			if c.RemotePeer() == id && n.Connectedness(id) != network.Connected && n.Connectedness(id) != network.Limited {
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

// Shutdown stops a running agent and returns when Run has returned, so
// every goroutine the agent started is gone. It is safe to call more than
// once, and before Run (Run then refuses to start).
func (a *Agent) Shutdown() {
	a.run.Shutdown()
}

// conn returns the ClickHouse connection, opening it on first use so the
// agent starts (and answers pings) while its warehouse is down.
func (a *Agent) conn(ctx context.Context) (driver.Conn, error) {
	a.chMu.Lock()
	defer a.chMu.Unlock()
	if a.ch != nil {
		return a.ch, nil
	}
	c, err := clickhouse.Open(ctx, a.cfg.ClickHouse)
	if err != nil {
		return nil, err
	}
	a.ch = c
	return c, nil
}

// close stops what start started, the Flight server first, and waits for
// the agent's goroutines. Run's context is already cancelled.
func (a *Agent) close() {
	a.stopFlight()
	if err := a.disc.Close(); err != nil {
		a.log.Warn("stop discovery", "err", err)
	}
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
