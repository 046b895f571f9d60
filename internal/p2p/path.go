package p2p

import (
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

// Paths a connection to a peer takes.
const (
	// PathDirect is a connection dialled or accepted straight.
	PathDirect = "direct"
	// PathHolePunched is a direct connection that hole punching (DCUtR)
	// opened to upgrade a relayed one.
	PathHolePunched = "hole-punched"
	// PathRelayed is a connection through a circuit relay (/p2p-circuit).
	PathRelayed = "relayed"
)

// ConnPath classifies one connection by its remote multiaddr: relayed when
// it goes through /p2p-circuit, else hole-punched when punched says a hole
// punch to the peer succeeded, else direct.
func ConnPath(c network.Conn, punched bool) string {
	return AddrPath(c.RemoteMultiaddr(), punched)
}

// AddrPath classifies a connection's remote multiaddr as ConnPath does.
func AddrPath(remote ma.Multiaddr, punched bool) string {
	if remote != nil {
		if _, err := remote.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			return PathRelayed
		}
	}
	if punched {
		return PathHolePunched
	}
	return PathDirect
}

// PathTo is the path h's traffic to id takes now: a direct (or hole-punched)
// connection when it has one, which libp2p prefers, else relayed; "" when h
// has no connection to id. A direct connection is hole-punched when it
// opened during a hole punch to id that succeeded (punches, which may be
// nil).
func PathTo(h host.Host, id peer.ID, punches *Punches) string {
	path, _ := RouteTo(h, id, punches)
	return path
}

// RouteTo is the path (as PathTo) and the transport, "quic-v1" or "tcp", of
// the connection to id that h's new streams ride: of several, the one
// libp2p picks, that is the unlimited one, then the direct one, then the
// one with the most streams, then the newest. Both are "" when h has no
// connection to id. A relayed connection's transport is that of its hop to
// the relay.
func RouteTo(h host.Host, id peer.ID, punches *Punches) (path, transport string) {
	var best network.Conn
	for _, c := range h.Network().ConnsToPeer(id) {
		if best == nil || betterConn(c, best) {
			best = c
		}
	}
	if best == nil {
		return "", ""
	}
	return ConnPath(best, punches.Opened(id, best.Stat().Opened)), ConnTransport(best)
}

// betterConn says whether libp2p's swarm prefers a to b for a new stream.
func betterConn(a, b network.Conn) bool {
	if al, bl := a.Stat().Limited, b.Stat().Limited; al != bl {
		return !al
	}
	if ad, bd := AddrPath(a.RemoteMultiaddr(), false) != PathRelayed, AddrPath(b.RemoteMultiaddr(), false) != PathRelayed; ad != bd {
		return ad
	}
	if as, bs := len(a.GetStreams()), len(b.GetStreams()); as != bs {
		return as > bs
	}
	return !a.Stat().Opened.Before(b.Stat().Opened)
}

// ConnTransport is the transport c's packets travel on, from its remote
// multiaddr: "quic-v1" or "tcp" (of the hop to the relay, for a relayed
// connection, whose connection state libp2p reports without its hop), or
// what libp2p reports for another transport.
func ConnTransport(c network.Conn) string {
	if t := addrTransport(c.RemoteMultiaddr()); t != "" {
		return t
	}
	return c.ConnState().Transport
}

// addrTransport is the first transport a's packets travel on: "quic-v1" or
// "tcp" (of the hop to the relay, for a relayed address); "" for another
// one, or a nil a.
func addrTransport(a ma.Multiaddr) string {
	if a == nil {
		return ""
	}
	for _, p := range a.Protocols() {
		switch p.Code {
		case ma.P_QUIC_V1:
			return "quic-v1"
		case ma.P_TCP:
			return "tcp"
		}
	}
	return ""
}

// punchSlack widens a hole punch's span for the clocks of the connection's
// opening and of the punch's events.
const punchSlack = time.Second

// Punches records, per peer, the span of the last hole punch that
// succeeded, as the hole punching service reports them (a
// holepunch.EventTracer). Its zero value is ready; a nil *Punches records
// nothing.
type Punches struct {
	mu    sync.Mutex
	peers map[peer.ID]punchSpan
}

type punchSpan struct{ from, to time.Time }

// Trace records the span of a hole punch that succeeded, and forgets the
// peer's earlier one when a punch fails.
func (p *Punches) Trace(evt *holepunch.Event) {
	end, ok := evt.Evt.(*holepunch.EndHolePunchEvt)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.peers == nil {
		p.peers = map[peer.ID]punchSpan{}
	}
	if !end.Success {
		delete(p.peers, evt.Remote)
		return
	}
	at := time.Unix(0, evt.Timestamp)
	p.peers[evt.Remote] = punchSpan{from: at.Add(-end.EllapsedTime - punchSlack), to: at.Add(punchSlack)}
}

// Opened reports whether a connection to id that opened at opened came
// from the last successful hole punch to id.
func (p *Punches) Opened(id peer.ID, opened time.Time) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.peers[id]
	return ok && !opened.Before(s.from) && !opened.After(s.to)
}

// StreamRelayed reports whether c, a stream from DialStream, runs over a
// relayed (limited) connection, whose relay may cut it at its limits.
func StreamRelayed(c net.Conn) bool {
	s, ok := c.(streamConn)
	return ok && s.Conn().Stat().Limited
}
