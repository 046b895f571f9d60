package p2p

import (
	"net"
	"sync"

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
// has no connection to id. punches may be nil.
func PathTo(h host.Host, id peer.ID, punches *Punches) string {
	best := ""
	for _, c := range h.Network().ConnsToPeer(id) {
		p := ConnPath(c, punches.Succeeded(id))
		if p != PathRelayed {
			return p
		}
		best = p
	}
	return best
}

// Punches records the peers to which a hole punch succeeded, as the hole
// punching service reports them (a holepunch.EventTracer). Its zero value
// is ready; a nil *Punches records nothing.
type Punches struct {
	mu    sync.Mutex
	peers map[peer.ID]bool
}

// Trace records the outcome of a hole punch.
func (p *Punches) Trace(evt *holepunch.Event) {
	end, ok := evt.Evt.(*holepunch.EndHolePunchEvt)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.peers == nil {
		p.peers = map[peer.ID]bool{}
	}
	p.peers[evt.Remote] = end.Success
}

// Succeeded reports whether the last hole punch to id succeeded.
func (p *Punches) Succeeded(id peer.ID) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peers[id]
}

// StreamRelayed reports whether c, a stream from DialStream, runs over a
// relayed (limited) connection, whose relay may cut it at its limits.
func StreamRelayed(c net.Conn) bool {
	s, ok := c.(streamConn)
	return ok && s.Conn().Stat().Limited
}
