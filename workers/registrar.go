package workers

import (
	"context"
	"errors"
	"log/slog"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syndb/federation/internal/fedpb"
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
	// registered, when set, is called after every successful registration.
	registered func(c store.Cluster)
}

// refusals are the registration errors a node is told about, as unauthorized.
var refusals = []error{store.ErrPeerMismatch, store.ErrNotEnrolled, store.ErrRevoked,
	store.ErrTokenInvalid, store.ErrTokenUsed, store.ErrTokenExpired}

// Handle validates a registration and writes it to the registry. A name
// bound to another peer is refused and nothing changes.
// The request arrives validated (fedpb.RegisterRequest.Validate).
func (r *Registrar) Handle(ctx context.Context, from peer.ID, req *fedpb.RegisterRequest) (*fedpb.RegisterResponse, error) {
	c, err := r.store.Register(ctx, store.Registration{
		Name: req.GetName(), PeerID: from.String(), Addrs: req.GetAddrs(), FlightAddr: req.GetFlightAddr(),
		ClickHouseAddr: req.GetClickhouseAddr(), AgentVersion: req.GetAgentVersion(), SchemaVersion: int(req.GetSchemaVersion()),
		Token: req.GetEnrollmentToken(),
	})
	for _, refusal := range refusals {
		if errors.Is(err, refusal) {
			r.log.Warn("registration refused", "name", req.GetName(), "peer", from, "reason", err)
			return nil, p2p.Errorf(p2p.CodeUnauthorized, "registration refused: %v", err)
		}
	}
	if err != nil {
		r.log.Error("registration failed", "name", req.GetName(), "peer", from, "err", err)
		return nil, p2p.Errorf(p2p.CodeUnavailable, "registry unavailable")
	}
	if r.enrolled != nil {
		r.enrolled(ctx)
	}
	if r.registered != nil {
		r.registered(c)
	}
	r.log.Info("node registered", "name", c.Name, "peer", from, "schema_version", c.SchemaVersion, "addrs", req.GetAddrs())
	return &fedpb.RegisterResponse{Name: c.Name, TargetSchema: int32(r.target)}, nil
}
