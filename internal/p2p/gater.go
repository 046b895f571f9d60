package p2p

import (
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Access says which peers a host admits.
type Access struct {
	// Enrolled peers, by peer ID, with their cluster names.
	Enrolled map[peer.ID]string
	// Revoked peers are refused always.
	Revoked map[peer.ID]bool
	// Open admits unknown peers, so a node can present its enrollment token.
	Open bool
	// Infra peers (bootstrap peers, relays) are admitted always.
	Infra map[peer.ID]bool
}

// Gater is a connection gater over an Access snapshot that is swapped
// atomically: checks never lock.
type Gater struct {
	v atomic.Pointer[Access]
}

// NewGater returns a gater that admits nobody until Set.
func NewGater() *Gater {
	g := &Gater{}
	g.v.Store(&Access{})
	return g
}

// Set replaces the access snapshot.
func (g *Gater) Set(a Access) { g.v.Store(&a) }

// Enrolled reports whether p is an enrolled, unrevoked peer, and its name.
func (g *Gater) Enrolled(p peer.ID) (string, bool) {
	a := g.v.Load()
	if a.Revoked[p] {
		return "", false
	}
	name, ok := a.Enrolled[p]
	return name, ok
}

// Admits reports whether a connection with p may stand.
func (g *Gater) Admits(p peer.ID) bool {
	a := g.v.Load()
	if a.Revoked[p] {
		return false
	}
	_, ok := a.Enrolled[p]
	return ok || a.Open || a.Infra[p]
}

// InterceptPeerDial refuses dialling revoked peers.
func (g *Gater) InterceptPeerDial(p peer.ID) bool { return !g.v.Load().Revoked[p] }

// InterceptAddrDial allows every address.
func (g *Gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

// InterceptAccept allows the handshake; the peer is checked once known.
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured admits the peer, now authenticated, when Access allows
// it. Connections the host dials itself (to bootstrap peers, relays, DHT
// servers, nodes) are refused only to revoked peers.
func (g *Gater) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	if dir == network.DirOutbound {
		return !g.v.Load().Revoked[p]
	}
	return g.Admits(p)
}

// InterceptUpgraded allows every upgraded connection.
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
