package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/version"
	"github.com/syndb/federation/internal/wire"
)

func (a *Agent) registerWithBackoff(ctx context.Context) error {
	delay := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := a.register(ctx)
		if err == nil {
			a.lastErr.Store(nil)
			return nil
		}
		if ne, ok := errors.AsType[net.Error](err); ctx.Err() != nil || (ok && ne.Timeout()) {
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

// errNoHub means no hub has been found yet.
var errNoHub = errors.New("hub not found yet")

// register finds the hub and registers with it. A hub found through
// discovery with no configured ID is trusted on first use: the first one
// that accepts the registration is pinned.
func (a *Agent) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cands := a.hubCandidates(ctx)
	if len(cands) == 0 {
		return fmt.Errorf("%w (bootstrap peers %d, mDNS %v)", errNoHub, len(a.cfg.Bootstrap), a.cfg.MDNS)
	}
	var errs []error
	for _, c := range cands {
		err := a.registerCandidate(ctx, c)
		if err == nil {
			return nil
		}
		if p2p.IsCode(err, p2p.CodeUnauthorized) {
			return err
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// registerCandidate registers with c and pins it when it accepts. With no
// hub pinned yet, c is the candidate while the call is under way: its own
// calls to the node wait for the answer, then are served only if it
// accepted (hubOnly).
func (a *Agent) registerCandidate(ctx context.Context, c peer.AddrInfo) error {
	if a.HubID() != "" {
		err := a.registerWith(ctx, c)
		if err == nil {
			a.pinHub(c)
		}
		return err
	}
	pending := &pendingHub{id: c.ID, decided: make(chan struct{})}
	a.candidate.Store(pending)
	defer func() {
		a.candidate.Store(nil)
		close(pending.decided)
	}()
	err := a.registerWith(ctx, c)
	if err == nil {
		a.log.Warn("hub trusted on first use; pin it with SYNDB_HUB_ID", "hub", c.ID)
		a.pinHub(c)
	}
	return err
}

// hubCandidates lists where the hub may be: its configured address; or the
// pinned hub's addresses from the DHT, the LAN and what the host knows; or,
// with no hub pinned yet, every peer advertising syndb-hub in the DHT and
// every federation peer on the LAN.
func (a *Agent) hubCandidates(ctx context.Context) []peer.AddrInfo {
	a.hubMu.Lock()
	hub, fixed := a.hub, a.hubFixed
	a.hubMu.Unlock()
	if fixed {
		return []peer.AddrInfo{hub}
	}
	var out []peer.AddrInfo
	if hub.ID != "" {
		if known := a.host.Peerstore().Addrs(hub.ID); len(known) > 0 {
			out = append(out, peer.AddrInfo{ID: hub.ID, Addrs: known})
		}
		if a.disc.HasDHT() {
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			ai, err := a.disc.FindPeer(fctx, hub.ID)
			cancel()
			if err == nil {
				out = append(out, ai)
			} else {
				a.log.Debug("hub lookup in the DHT", "hub", hub.ID, "err", err)
			}
		}
	} else if a.disc.HasDHT() {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		found, err := a.disc.FindProviders(fctx, p2p.HubNamespace)
		cancel()
		if err != nil {
			a.log.Debug("hub lookup in the DHT", "err", err)
		}
		out = append(out, found...)
	}
	for _, p := range a.disc.LAN() {
		if hub.ID == "" || p.ID == hub.ID {
			out = append(out, p)
		}
	}
	return out
}

func (a *Agent) registerWith(ctx context.Context, hub peer.AddrInfo) error {
	if err := a.host.Connect(network.WithAllowLimitedConn(ctx, "register"), hub); err != nil {
		return fmt.Errorf("connect to hub %s: %w", hub.ID, err)
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
	req := &wire.RegisterRequest{
		Name: a.cfg.Name, Addrs: addrs, FlightAddr: a.registeredFlightAddr(), ClickhouseAddr: a.cfg.ClickHousePublicAddr,
		ClickhouseDatabase: a.cfg.ClickHouse.Database, SchemaVersion: int32(v), AgentVersion: version.String(), EnrollmentToken: a.cfg.EnrollmentToken,
		FlightCertSha256: a.registeredFlightPin(),
	}
	var resp wire.RegisterResponse
	if err := p2p.Call(ctx, a.host, hub.ID, p2p.Register, req, &resp); err != nil {
		return err
	}
	a.log.Info("registered with hub", "hub", hub.ID, "schema_version", v, "hub_target_schema", resp.GetTargetSchema())
	a.regOnce.Do(func() { close(a.registered) })
	return nil
}
