package workers

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/internal/wire"
)

// registry is what the Registrar needs of the store.
type registry interface {
	Register(ctx context.Context, r store.Registration) (domain.Cluster, error)
}

// Registrar answers nodes' Register messages on the hub's libp2p host.
type Registrar struct {
	store  registry
	target int
	log    *slog.Logger
	// conns lists the host's connections to a peer (Network().ConnsToPeer).
	conns func(peer.ID) []network.Conn
	// refreshAccess, when set, is called after every successful
	// registration: it reloads the gater, so a first registration (an
	// enrolment) admits the peer at once, without waiting for the access
	// sync's notification.
	refreshAccess func(ctx context.Context)
	// registered, when set, is called after every successful registration.
	registered func(c domain.Cluster)
}

// refusals are the registration errors a node is told about, as
// unauthorized: each by its own text only, never the detail wrapped around
// it (which may name other peers or clusters).
var refusals = []error{domain.ErrPeerMismatch, domain.ErrTokenInvalid, domain.ErrTokenUsed, domain.ErrTokenExpired}

// Handle validates a registration and writes it to the registry. A name
// bound to another peer is refused and nothing changes; so are data
// addresses off the node's host (checkDataAddrs).
// The request arrives validated (wire.RegisterRequest.Validate: its
// clickhouse_database is empty or an identifier); an empty one is stored as
// domain.DefaultClickHouseDatabase.
func (r *Registrar) Handle(ctx context.Context, from peer.ID, req *wire.RegisterRequest) (*wire.RegisterResponse, error) {
	origins, relayed := r.origins(from)
	addrs := req.GetAddrs()
	if addrs == nil {
		addrs = []string{} // the registry's addrs column is NOT NULL
	}
	database := req.GetClickhouseDatabase()
	if database == "" {
		database = domain.DefaultClickHouseDatabase // an agent that does not send it reads "syndb"
	}
	c, err := r.store.Register(ctx, store.Registration{
		Name: req.GetName(), PeerID: from.String(), Addrs: addrs, FlightAddr: req.GetFlightAddr(),
		ClickHouseAddr: req.GetClickhouseAddr(), ClickHouseDatabase: database,
		FlightCertSHA256: hex.EncodeToString(req.GetFlightCertSha256()),
		AgentVersion:     req.GetAgentVersion(), SchemaVersion: int(req.GetSchemaVersion()),
		Token: req.GetEnrollmentToken(),
		CheckData: func(dataHost string) error {
			return checkDataAddrs(dataAddrs{ClickHouse: req.GetClickhouseAddr(), Flight: req.GetFlightAddr()}, origins, relayed, dataHost)
		},
	})
	for _, refusal := range refusals {
		if errors.Is(err, refusal) {
			r.log.Warn("registration refused", "name", req.GetName(), "peer", from, "reason", err)
			return nil, p2p.Errorf(p2p.CodeUnauthorized, "registration refused: %v", refusal)
		}
	}
	if de := (*dataAddrError)(nil); errors.As(err, &de) {
		r.log.Warn("registration refused", "name", req.GetName(), "peer", from, "reason", err)
		return nil, p2p.Errorf(p2p.CodeInvalid, "registration refused: %v", de)
	}
	if err != nil {
		r.log.Error("registration failed", "name", req.GetName(), "peer", from, "err", err)
		return nil, p2p.Errorf(p2p.CodeUnavailable, "registry unavailable")
	}
	if r.refreshAccess != nil {
		r.refreshAccess(ctx)
	}
	if r.registered != nil {
		r.registered(c)
	}
	r.log.Info("node registered", "name", c.Name, "peer", from, "schema_version", c.SchemaVersion, "addrs", req.GetAddrs(),
		"clickhouse_database", c.ClickHouseDatabase)
	return &wire.RegisterResponse{Name: c.Name, TargetSchema: int32(r.target)}, nil
}

// origins are the IP addresses of the host's direct connections to p, and
// whether it also has relayed ones (which show no address of p's).
func (r *Registrar) origins(p peer.ID) (ips []netip.Addr, relayed bool) {
	if r.conns == nil {
		return nil, false
	}
	for _, c := range r.conns(p) {
		if ip, ok := p2p.RemoteIP(c.RemoteMultiaddr()); ok {
			ips = append(ips, ip)
		} else {
			relayed = true
		}
	}
	return ips, relayed
}

// dataAddrs are the addresses a node asks the hub to connect to outside
// libp2p: its ClickHouse (for remote()) and its Arrow Flight server.
type dataAddrs struct {
	ClickHouse, Flight string
}

// dataAddrError refuses a registration's data address; its text is for the
// registering node.
type dataAddrError struct{ msg string }

func (e *dataAddrError) Error() string { return e.msg }

// checkDataAddrs refuses data addresses the hub should not connect to: each
// must be host:port with the host either an IP address one of the node's
// direct connections comes from (origins), or the data host an admin set at
// enrolment (the only place a host name or a relayed node's address is
// accepted). So a node cannot point the hub's ClickHouse or Flight client at
// a third host, or at the hub's own services. An empty address is not used
// and passes.
func checkDataAddrs(a dataAddrs, origins []netip.Addr, relayed bool, dataHost string) error {
	for _, f := range []struct{ field, addr string }{{"clickhouse_addr", a.ClickHouse}, {"flight_addr", a.Flight}} {
		if f.addr == "" {
			continue
		}
		if err := checkDataAddr(f.field, f.addr, origins, relayed, dataHost); err != nil {
			return err
		}
	}
	return nil
}

func checkDataAddr(field, addr string, origins []netip.Addr, relayed bool, dataHost string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return &dataAddrError{fmt.Sprintf("%s %q is not host:port", field, addr)}
	}
	if dataHost != "" && strings.EqualFold(host, dataHost) {
		return nil
	}
	if dataHost != "" {
		if want, err := netip.ParseAddr(dataHost); err == nil {
			if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap() == want.Unmap() {
				return nil
			}
		}
	}
	ip, err := netip.ParseAddr(host)
	if err == nil {
		ip = ip.Unmap().WithZone("")
		for _, o := range origins {
			if o.Unmap().WithZone("") == ip {
				return nil
			}
		}
	}
	var msg string
	if len(origins) == 0 {
		how := "shows no address of the node"
		if relayed {
			how = "is relayed, so it shows no address of the node"
		}
		msg = fmt.Sprintf("%s %s cannot be checked: this connection %s", field, addr, how)
	} else {
		ips := make([]string, len(origins))
		for i, o := range origins {
			ips[i] = o.String()
		}
		msg = fmt.Sprintf("%s %s is not on the host this connection comes from (%s)", field, addr, strings.Join(ips, ", "))
	}
	switch {
	case dataHost != "":
		msg += fmt.Sprintf(" nor on the data host set at enrolment (%s)", dataHost)
	case err != nil || len(origins) == 0:
		msg += "; a host name, or an address the connection cannot vouch for, needs the data host an admin sets at enrolment (data_host)"
	}
	return &dataAddrError{msg}
}
