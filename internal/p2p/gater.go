package p2p

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
)

// Access says which peers a host admits.
type Access struct {
	// Enrolled peers, by peer ID, with their cluster names.
	Enrolled map[peer.ID]string
	// Revoked peers are refused always.
	Revoked map[peer.ID]bool
	// Open admits strangers (peers neither enrolled, revoked nor infra), so
	// a node can present its enrollment token; they may open only
	// StrangerProtocol streams.
	Open bool
	// Infra peers (bootstrap peers, relays) are admitted always.
	Infra map[peer.ID]bool
}

// StrangerProtocol is the one protocol a stranger may open a stream on.
var StrangerProtocol = Register.ID

// quietRefusals are the protocols a node's host opens to the hub by itself,
// while still a stranger: identify (on every new connection) and a relay
// reservation (when the hub is its relay). They are refused without closing
// the connection, so the node can still Register on it.
var quietRefusals = map[protocol.ID]bool{
	identify.ID: true, identify.IDPush: true, circuit.ProtoIDv2Hop: true,
}

// errStranger refuses a stranger's stream on any protocol but Register.
var errStranger = errors.New("peer is not enrolled: only registration is open to it")

// Gater is a connection gater over an Access snapshot that is swapped
// atomically: checks never lock. On a host built with it (NewHost), it also
// gates inbound streams: a stranger may open only StrangerProtocol, and a
// stranger that opens another (but those in quietRefusals) loses its
// connections. Its Guard rate-limits strangers' registrations and closes a
// stranger's connection after a refused one.
type Gater struct {
	v      atomic.Pointer[Access]
	limits *strangerLimits
	// net is the host's network, set by NewHost, to close connections.
	net atomic.Pointer[network.Network]
}

// NewGater returns a gater that admits nobody until Set, with the default
// limits on strangers (DefaultStrangerLimit).
func NewGater() *Gater { return NewGaterWith(DefaultStrangerLimit) }

// NewGaterWith returns a gater that admits nobody until Set and rate-limits
// strangers' registrations by l.
func NewGaterWith(l StrangerLimit) *Gater {
	g := &Gater{limits: newStrangerLimits(l)}
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

// Known reports whether p is an enrolled, unrevoked peer or an infra peer:
// every protocol is open to it.
func (g *Gater) Known(p peer.ID) bool {
	a := g.v.Load()
	if a.Revoked[p] {
		return false
	}
	_, ok := a.Enrolled[p]
	return ok || a.Infra[p]
}

// Admits reports whether a connection with p may stand.
func (g *Gater) Admits(p peer.ID) bool {
	if g.Known(p) {
		return true
	}
	a := g.v.Load()
	return a.Open && !a.Revoked[p]
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

// admitStream decides an inbound stream of p on proto, once negotiated. A
// stranger gets only StrangerProtocol; its other streams are refused and,
// but for quietRefusals, its connections closed.
func (g *Gater) admitStream(p peer.ID, proto protocol.ID) error {
	if proto == StrangerProtocol || g.Known(p) {
		return nil
	}
	if !quietRefusals[proto] {
		g.closePeer(p)
	}
	return errStranger
}

// closePeer closes every connection to p, without waiting.
func (g *Gater) closePeer(p peer.ID) {
	if n := g.net.Load(); n != nil {
		go func() { _ = (*n).ClosePeer(p) }()
	}
}

// bind gives the gater the host's network, to close connections with.
func (g *Gater) bind(n network.Network) { g.net.Store(&n) }

// Admit lets known peers register at will and strangers within their rate
// limits, per peer and per IP (Guard).
func (g *Gater) Admit(c network.Conn) error {
	if g.Known(c.RemotePeer()) {
		return nil
	}
	if !g.limits.allow(c.RemotePeer(), c.RemoteMultiaddr()) {
		return Errorf(CodeUnavailable, "too many registration attempts; retry later")
	}
	return nil
}

// refusalLinger is how long a refused stranger's connection lives on after
// the refusal was written, so the answer reaches it before the close does
// (closing at once can drop data still in flight).
const refusalLinger = time.Second

// Refused closes a stranger's connection shortly after its registration
// was refused (Guard); a known peer keeps its connection.
func (g *Gater) Refused(c network.Conn) {
	if !g.Known(c.RemotePeer()) {
		time.AfterFunc(refusalLinger, func() { _ = c.Close() })
	}
}
