package nodeagent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// Ticket lifetimes: long enough to start a stream (the stream itself may
// run longer), capped, so a leaked ticket is of little use.
const (
	DefaultTicketTTL = time.Minute
	MaxTicketTTL     = 5 * time.Minute
)

// ticketIDLen is the length of a ticket's random ID.
const ticketIDLen = 16

// ErrTicket is the root of every ticket refusal.
var ErrTicket = errors.New("flight ticket refused")

// handleFlightEndpoint answers where to read a query and with what: the
// node's Flight location and a ticket for exactly that query, signed with
// the node's key, good for one stream, expiring soon. The stream must come
// from the asking peer: over libp2p, the peer itself; over TCP, one of the
// IP addresses its direct connections come from.
func (a *Agent) handleFlightEndpoint(ctx context.Context, from peer.ID, req *wire.GetFlightEndpointRequest) (*wire.GetFlightEndpointResponse, error) {
	if a.cfg.FlightAddr == "" {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "this node serves no Flight endpoint")
	}
	ips := peerIPs(a.host.Network().ConnsToPeer(from))
	if len(ips) == 0 && !a.overLibp2p() {
		return nil, p2p.Errorf(p2p.CodeUnavailable,
			"no direct connection from %s: Flight tickets are bound to the IP address the asking peer connects from", from)
	}
	conn, err := a.conn(ctx)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "clickhouse: %v", err)
	}
	q := req.GetQuery()
	cols, err := tableColumns(ctx, conn, q.GetTable())
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, p2p.Errorf(p2p.CodeNotFound, "no table %q on node %s", q.GetTable(), a.cfg.Name)
	}
	names := q.GetColumns()
	if len(names) == 0 {
		for _, c := range cols {
			names = append(names, c.name)
		}
	} else {
		have := make(map[string]bool, len(cols))
		for _, c := range cols {
			have[c.name] = true
		}
		for _, n := range names {
			if !have[n] {
				return nil, p2p.Errorf(p2p.CodeInvalid, "table %s has no column %q", q.GetTable(), n)
			}
		}
	}
	ttl := DefaultTicketTTL
	if d := req.GetTtl().AsDuration(); req.GetTtl() != nil && d > 0 {
		ttl = min(d, MaxTicketTTL)
	}
	issued := time.Now().UTC()
	expires := issued.Add(ttl)
	id := make([]byte, ticketIDLen)
	if _, err := rand.Read(id); err != nil {
		return nil, p2p.Errorf(p2p.CodeInternal, "ticket ID: %v", err)
	}
	t := &wire.FlightTicket{
		Node: a.cfg.Name, Holder: from.String(), HolderIps: ips, IssuedAt: timestamppb.New(issued), ExpiresAt: timestamppb.New(expires), Id: id,
		Query: &wire.FlightQuery{Table: q.GetTable(), Columns: names, DatasetIds: q.GetDatasetIds(), Limit: q.GetLimit()},
		Write: req.GetWrite(),
	}
	signed, err := SignTicket(a.key, t)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeInternal, "%v", err)
	}
	return &wire.GetFlightEndpointResponse{
		Location: a.flightLocation(), Ticket: signed, ExpiresAt: timestamppb.New(expires), Columns: names,
	}, nil
}

// peerIPs are the IP addresses of direct connections, each once, spelled
// as canonicalIP does (unmapped); relayed connections (through /p2p-circuit, with or
// without limits), which carry the relay's address and not the peer's, are
// left out.
func peerIPs(conns []network.Conn) []string {
	var out []string
	for _, c := range conns {
		ip, ok := p2p.RemoteIP(c.RemoteMultiaddr())
		if !ok || c.Stat().Limited {
			continue
		}
		if s := ip.Unmap().String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// canonicalIP is ip as holder_ips spell it (an IPv4 address in IPv6 form
// unmapped), or "" when it is not an address.
func canonicalIP(ip net.IP) string {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return ""
	}
	return a.Unmap().String()
}

// flightPublicAddr is where the hub reaches the node's Flight server.
func (a *Agent) flightPublicAddr() string {
	if a.cfg.FlightPublicAddr != "" {
		return a.cfg.FlightPublicAddr
	}
	return a.cfg.FlightAddr
}

// SignTicket encodes t and signs it with key.
func SignTicket(key crypto.PrivKey, t *wire.FlightTicket) ([]byte, error) {
	raw, err := proto.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode ticket: %w", err)
	}
	sig, err := key.Sign(raw)
	if err != nil {
		return nil, fmt.Errorf("sign ticket: %w", err)
	}
	out, err := proto.Marshal(&wire.SignedTicket{Ticket: raw, Signature: sig})
	if err != nil {
		return nil, fmt.Errorf("encode signed ticket: %w", err)
	}
	return out, nil
}

// VerifyTicket checks a ticket presented to node's Flight server: signed by
// pub, issued by that node at a stated time, not expired at now, with an
// ID, an address or a peer it is bound to, a valid query, and for a write
// the rows it may load. It returns what the ticket reads; whether it was
// used already, and from where it is presented, are the Flight server's to
// check. Every failure wraps ErrTicket.
func VerifyTicket(pub crypto.PubKey, node string, signed []byte, now time.Time) (*wire.FlightTicket, error) {
	var st wire.SignedTicket
	if err := proto.Unmarshal(signed, &st); err != nil {
		return nil, fmt.Errorf("%w: malformed: %w", ErrTicket, err)
	}
	ok, err := pub.Verify(st.GetTicket(), st.GetSignature())
	if err != nil || !ok {
		return nil, fmt.Errorf("%w: bad signature", ErrTicket)
	}
	var t wire.FlightTicket
	if err := proto.Unmarshal(st.GetTicket(), &t); err != nil {
		return nil, fmt.Errorf("%w: malformed: %w", ErrTicket, err)
	}
	if t.GetNode() != node {
		return nil, fmt.Errorf("%w: issued by node %q, not %q", ErrTicket, t.GetNode(), node)
	}
	if !now.Before(t.GetExpiresAt().AsTime()) {
		return nil, fmt.Errorf("%w: expired at %s", ErrTicket, t.GetExpiresAt().AsTime().Format(time.RFC3339))
	}
	if t.GetIssuedAt() == nil {
		return nil, fmt.Errorf("%w: no issue time", ErrTicket)
	}
	if len(t.GetId()) != ticketIDLen {
		return nil, fmt.Errorf("%w: no ticket ID", ErrTicket)
	}
	if len(t.GetHolderIps()) == 0 && t.GetHolder() == "" {
		return nil, fmt.Errorf("%w: bound to no address and no peer", ErrTicket)
	}
	if t.GetQuery() == nil {
		return nil, fmt.Errorf("%w: no query", ErrTicket)
	}
	if err := t.GetQuery().Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTicket, err)
	}
	if t.GetWrite() && t.GetQuery().GetLimit() == 0 {
		return nil, fmt.Errorf("%w: a write ticket without a row count", ErrTicket)
	}
	return &t, nil
}

// ErrTicketUsed is the refusal of a ticket presented a second time.
var ErrTicketUsed = fmt.Errorf("%w: ticket already used", ErrTicket)

// errTicketsFull refuses a ticket when the node remembers as many unexpired
// used tickets as it may.
var errTicketsFull = fmt.Errorf("%w: too many tickets in use; ask again later", ErrTicket)

// maxUsedTickets bounds the used-ticket IDs a node remembers at once.
const maxUsedTickets = 1 << 16

// usedTickets remembers the IDs of the tickets presented to a node, each
// until its ticket expires, so that each ticket is used once. It holds at
// most max IDs: expired ones are dropped when it fills, and at most once a
// minute otherwise.
type usedTickets struct {
	mu        sync.Mutex
	max       int
	expires   map[[ticketIDLen]byte]time.Time
	nextPrune time.Time
}

func newUsedTickets(limit int) *usedTickets {
	return &usedTickets{max: limit, expires: make(map[[ticketIDLen]byte]time.Time)}
}

// use records t's ID as used at now; ErrTicketUsed when it was already.
func (u *usedTickets) use(t *wire.FlightTicket, now time.Time) error {
	id := [ticketIDLen]byte(t.GetId()) // VerifyTicket checked the length
	u.mu.Lock()
	defer u.mu.Unlock()
	if exp, ok := u.expires[id]; ok && now.Before(exp) {
		return ErrTicketUsed
	}
	if len(u.expires) >= u.max || !now.Before(u.nextPrune) {
		for k, exp := range u.expires {
			if !now.Before(exp) {
				delete(u.expires, k)
			}
		}
		u.nextPrune = now.Add(time.Minute)
	}
	if len(u.expires) >= u.max {
		return errTicketsFull
	}
	u.expires[id] = t.GetExpiresAt().AsTime()
	return nil
}

// size is how many IDs are remembered.
func (u *usedTickets) size() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.expires)
}
