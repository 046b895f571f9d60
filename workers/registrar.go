package workers

import (
	"context"
	"errors"
	"log/slog"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/store"
)

// registry is what the Registrar needs of the store.
type registry interface {
	Register(ctx context.Context, r store.Registration) (store.Cluster, error)
}

// Registrar answers nodes' Register messages on the hub's libp2p host.
type Registrar struct {
	store  registry
	target int
	log    *slog.Logger
	// enrolled is called after a peer's first successful registration.
	enrolled func(ctx context.Context)
}

// refusals are the registration errors a node is told about, as unauthorized.
var refusals = []error{store.ErrPeerMismatch, store.ErrNotEnrolled, store.ErrRevoked,
	store.ErrTokenInvalid, store.ErrTokenUsed, store.ErrTokenExpired}

// Handle validates a registration and writes it to the registry. A name
// bound to another peer is refused and nothing changes.
func (r *Registrar) Handle(ctx context.Context, from peer.ID, req *p2p.RegisterRequest) (*p2p.RegisterResponse, error) {
	if !config.ValidName(req.Name) {
		return nil, p2p.Errorf(p2p.CodeInvalid, "cluster name %q must be 1-63 characters of a-z, 0-9 and '-'", req.Name)
	}
	if req.SchemaVersion < 0 {
		return nil, p2p.Errorf(p2p.CodeInvalid, "schema version %d is negative", req.SchemaVersion)
	}
	c, err := r.store.Register(ctx, store.Registration{
		Name: req.Name, PeerID: from.String(), Addrs: req.Addrs, FlightAddr: req.FlightAddr,
		ClickHouseAddr: req.ClickHouseAddr, AgentVersion: req.AgentVersion, SchemaVersion: req.SchemaVersion,
		Token: req.EnrollmentToken,
	})
	for _, refusal := range refusals {
		if errors.Is(err, refusal) {
			r.log.Warn("registration refused", "name", req.Name, "peer", from, "reason", err)
			return nil, p2p.Errorf(p2p.CodeUnauthorized, "registration refused: %v", err)
		}
	}
	if err != nil {
		r.log.Error("registration failed", "name", req.Name, "peer", from, "err", err)
		return nil, p2p.Errorf(p2p.CodeUnavailable, "registry unavailable")
	}
	if r.enrolled != nil {
		r.enrolled(ctx)
	}
	r.log.Info("node registered", "name", c.Name, "peer", from, "schema_version", c.SchemaVersion, "addrs", req.Addrs)
	return &p2p.RegisterResponse{Name: c.Name, TargetSchema: r.target}, nil
}
