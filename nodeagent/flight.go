package nodeagent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/syndb/federation/internal/fedpb"
	"github.com/syndb/federation/internal/p2p"
)

// Ticket lifetimes: short by default, capped, so a leaked ticket is of
// little use.
const (
	DefaultTicketTTL = 5 * time.Minute
	MaxTicketTTL     = time.Hour
)

// ErrTicket is the root of every ticket refusal.
var ErrTicket = errors.New("flight ticket refused")

// handleFlightEndpoint answers where to read a query and with what: the
// node's Flight location and a ticket for exactly that query, signed with
// the node's key, bound to the asking peer, expiring soon.
func (a *Agent) handleFlightEndpoint(ctx context.Context, from peer.ID, req *fedpb.GetFlightEndpointRequest) (*fedpb.GetFlightEndpointResponse, error) {
	if a.cfg.FlightAddr == "" {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "this node serves no Flight endpoint")
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
	if q.GetSummaryOf() != "" && req.GetWrite() {
		return nil, p2p.Errorf(p2p.CodeInvalid, "a summary cannot be written")
	}
	if q.GetSummaryOf() != "" {
		if _, err := summaryQuery(q.GetTable(), q.GetSummaryOf(), q.GetQuantiles(), q.GetDatasetIds(), cols); err != nil {
			return nil, err
		}
		names = summaryColumns
	} else if len(names) == 0 {
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
	expires := time.Now().Add(ttl).UTC()
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, p2p.Errorf(p2p.CodeInternal, "ticket nonce: %v", err)
	}
	t := &fedpb.FlightTicket{
		Node: a.cfg.Name, Holder: from.String(), ExpiresAt: timestamppb.New(expires), Nonce: nonce,
		Query: &fedpb.FlightQuery{Table: q.GetTable(), Columns: ticketColumns(q, names), DatasetIds: q.GetDatasetIds(), Limit: q.GetLimit(),
			SummaryOf: q.GetSummaryOf(), Quantiles: q.GetQuantiles()},
		Write: req.GetWrite(),
	}
	signed, err := SignTicket(a.key, t)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeInternal, "%v", err)
	}
	return &fedpb.GetFlightEndpointResponse{
		Location: "grpc://" + a.flightPublicAddr(), Ticket: signed, ExpiresAt: timestamppb.New(expires), Columns: names,
	}, nil
}

// ticketColumns are the columns a ticket names: none for a summary (its
// columns are the summary's own).
func ticketColumns(q *fedpb.FlightQuery, names []string) []string {
	if q.GetSummaryOf() != "" {
		return nil
	}
	return names
}

// flightPublicAddr is where the hub reaches the node's Flight server.
func (a *Agent) flightPublicAddr() string {
	if a.cfg.FlightPublicAddr != "" {
		return a.cfg.FlightPublicAddr
	}
	return a.cfg.FlightAddr
}

// SignTicket encodes t and signs it with key.
func SignTicket(key crypto.PrivKey, t *fedpb.FlightTicket) ([]byte, error) {
	raw, err := proto.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode ticket: %w", err)
	}
	sig, err := key.Sign(raw)
	if err != nil {
		return nil, fmt.Errorf("sign ticket: %w", err)
	}
	out, err := proto.Marshal(&fedpb.SignedTicket{Ticket: raw, Signature: sig})
	if err != nil {
		return nil, fmt.Errorf("encode signed ticket: %w", err)
	}
	return out, nil
}

// VerifyTicket checks a ticket presented to node's Flight server: signed by
// pub, issued by that node, not expired at now. It returns what the ticket
// reads. Every failure wraps ErrTicket.
func VerifyTicket(pub crypto.PubKey, node string, signed []byte, now time.Time) (*fedpb.FlightTicket, error) {
	var st fedpb.SignedTicket
	if err := proto.Unmarshal(signed, &st); err != nil {
		return nil, fmt.Errorf("%w: malformed: %w", ErrTicket, err)
	}
	ok, err := pub.Verify(st.GetTicket(), st.GetSignature())
	if err != nil || !ok {
		return nil, fmt.Errorf("%w: bad signature", ErrTicket)
	}
	var t fedpb.FlightTicket
	if err := proto.Unmarshal(st.GetTicket(), &t); err != nil {
		return nil, fmt.Errorf("%w: malformed: %w", ErrTicket, err)
	}
	if t.GetNode() != node {
		return nil, fmt.Errorf("%w: issued by node %q, not %q", ErrTicket, t.GetNode(), node)
	}
	if !now.Before(t.GetExpiresAt().AsTime()) {
		return nil, fmt.Errorf("%w: expired at %s", ErrTicket, t.GetExpiresAt().AsTime().Format(time.RFC3339))
	}
	if t.GetQuery() == nil {
		return nil, fmt.Errorf("%w: no query", ErrTicket)
	}
	if err := t.GetQuery().Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTicket, err)
	}
	return &t, nil
}
