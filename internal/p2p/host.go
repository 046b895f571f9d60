// Package p2p is the libp2p plumbing shared by the hub and the node agent:
// persistent identities, host construction, and the request/response
// protocols of the federation, one versioned protocol ID per message.
package p2p

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	bconnmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// HostConfig describes a libp2p host of the federation.
type HostConfig struct {
	Key    crypto.PrivKey
	Listen []string
	// Gater, when set, decides which peers may connect.
	Gater connmgr.ConnectionGater
	// PSK, when set, makes the host part of a private network: only peers
	// with the same 32-byte key can connect. libp2p private networks run
	// over TCP only, so QUIC listen addresses are dropped.
	PSK []byte
	// Reachability is "auto", "public" or "private" (behind NAT).
	Reachability string
	// RelayService makes the host a circuit relay v2 server whose relayed
	// connections live at most RelayLimit.
	RelayService bool
	RelayLimit   RelayLimit
	// Relays are the circuit relays a host behind NAT reserves a slot on;
	// it then advertises its relayed addresses (Reservations keeps them).
	Relays []peer.AddrInfo
	// MaxConns, when positive, sizes the host for that many connections:
	// libp2p's resource manager limits and connection manager watermarks
	// (whose defaults suit a host with a few hundred peers, not a hub that
	// talks to a thousand nodes every sweep).
	MaxConns int
	// Punches, when set, records the peers hole punching reached (see PathTo).
	Punches *Punches
	// PreferTCP dials a peer's direct TCP addresses first and its QUIC ones
	// only when no TCP address answers in time (TCPFirstDialRanker), so
	// that bulk transfers ride TCP with TLS 1.3, which costs about half the
	// CPU time per byte of quic-go's 1,452-byte packets. Without it QUIC is
	// dialled first, as libp2p does by default.
	PreferTCP bool
}

// RelayLimit bounds each relayed connection a relay service carries.
type RelayLimit struct {
	Duration time.Duration
	Data     int64
}

// NewHost starts a libp2p host speaking QUIC-v1 (TLS 1.3 built in) and TCP,
// over which it offers TLS 1.3 first and Noise as fallback; it dials QUIC
// first unless c.PreferTCP. The caller closes it.
func NewHost(c HostConfig) (host.Host, error) {
	opts := []libp2p.Option{
		libp2p.Identity(c.Key),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		// The circuit transport, so relayed addresses can be dialled, and
		// hole punching to upgrade relayed connections where NATs allow.
		libp2p.EnableRelay(),
	}
	if c.PreferTCP {
		opts = append(opts, libp2p.SwarmOpts(swarm.WithDialRanker(TCPFirstDialRanker)))
	}
	if c.Punches != nil {
		opts = append(opts, libp2p.EnableHolePunching(holepunch.WithTracer(c.Punches)))
	} else {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	switch c.Reachability {
	case "public":
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case "private":
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	if c.RelayService {
		limit := &relayv2.RelayLimit{Duration: c.RelayLimit.Duration, Data: c.RelayLimit.Data}
		res := relayv2.DefaultResources()
		res.Limit = limit
		// Reservations answer with every address of the relay, private
		// ones too: a federation's relay often sits on a lab network.
		opts = append(opts, libp2p.EnableRelayService(relayv2.WithResources(res),
			relayv2.WithReservationAddressFilter(func(ma.Multiaddr) bool { return true })))
		if c.Reachability == "" || c.Reachability == "auto" {
			// The relay service only runs on a host that knows it is public.
			opts = append(opts, libp2p.ForceReachabilityPublic())
		}
	}
	if len(c.Relays) > 0 {
		circuits := circuitAddrs(c.Relays)
		opts = append(opts, libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
			return append(addrs, circuits...)
		}))
	}
	listen := c.Listen
	if len(c.PSK) > 0 {
		if len(c.PSK) != 32 {
			return nil, fmt.Errorf("private network key must be 32 bytes, got %d", len(c.PSK))
		}
		opts = append(opts, libp2p.PrivateNetwork(pnet.PSK(c.PSK)))
		listen = nil
		for _, a := range c.Listen {
			if !strings.Contains(a, "/quic") {
				listen = append(listen, a)
			}
		}
		if len(listen) == 0 {
			return nil, fmt.Errorf("a private network needs a TCP listen address; got only %v", c.Listen)
		}
	} else {
		opts = append(opts, libp2p.Transport(libp2pquic.NewTransport))
	}
	opts = append(opts, libp2p.ListenAddrStrings(listen...))
	if c.Gater != nil {
		opts = append(opts, libp2p.ConnectionGater(c.Gater))
	}
	var rm network.ResourceManager
	if c.MaxConns > 0 {
		var (
			cm  *bconnmgr.BasicConnMgr
			err error
		)
		if rm, cm, err = sizedFor(c.MaxConns); err != nil {
			return nil, err
		}
		opts = append(opts, libp2p.ConnectionManager(cm))
	}
	gater, gatesStreams := c.Gater.(*Gater)
	if gatesStreams {
		if rm == nil {
			scaling := rcmgr.DefaultLimits
			libp2p.SetDefaultServiceLimits(&scaling)
			var err error
			if rm, err = rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(scaling.AutoScale())); err != nil {
				return nil, fmt.Errorf("libp2p resource manager: %w", err)
			}
		}
		rm = &gatedResources{ResourceManager: rm, gate: gater}
	}
	if rm != nil {
		opts = append(opts, libp2p.ResourceManager(rm))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("start libp2p host on %v: %w", c.Listen, err)
	}
	if gatesStreams {
		gater.bind(h.Network())
	}
	return h, nil
}

// TCPFirstGrace is how long after its last direct TCP address
// TCPFirstDialRanker dials a peer's other addresses. TCP with TLS 1.3 takes
// three round trips to be usable, QUIC one, so a shorter grace hands links
// of a few hundred milliseconds' round trip to QUIC; a TCP dial that fails
// (a refused port) lets the swarm dial the next address at once, so only a
// TCP port that drops packets costs the whole grace.
const TCPFirstGrace = time.Second

// TCPFirstDialRanker ranks a peer's direct TCP addresses first, as libp2p's
// default ranker orders them among themselves, and every other address
// (QUIC, relayed) TCPFirstGrace after them, in libp2p's default order:
// QUIC is dialled where TCP is blocked or fails, or answers slower than a
// second. Relayed addresses keep libp2p's order whatever their hop. Without
// a direct TCP address it is libp2p's default ranker.
func TCPFirstDialRanker(addrs []ma.Multiaddr) []network.AddrDelay {
	var tcpAddrs []ma.Multiaddr
	for _, a := range addrs {
		if isDirectTCP(a) {
			tcpAddrs = append(tcpAddrs, a)
		}
	}
	if len(tcpAddrs) == 0 {
		return swarm.DefaultDialRanker(addrs)
	}
	ranked := swarm.DefaultDialRanker(tcpAddrs)
	var last time.Duration
	for _, d := range ranked {
		last = max(last, d.Delay)
	}
	// The others keep the delays libp2p gives them among all the
	// addresses (relayed ones wait for the direct ones), after TCP's.
	for _, d := range swarm.DefaultDialRanker(slices.Clone(addrs)) {
		if !isDirectTCP(d.Addr) {
			d.Delay += last + TCPFirstGrace
			ranked = append(ranked, d)
		}
	}
	return ranked
}

// isDirectTCP says whether a is a TCP address not through a relay.
func isDirectTCP(a ma.Multiaddr) bool {
	return AddrPath(a, false) != PathRelayed && addrTransport(a) == "tcp"
}

// sizedFor returns the resource and connection managers that let a host
// hold n connections, with a few streams each, before libp2p refuses or
// trims any.
func sizedFor(n int) (network.ResourceManager, *bconnmgr.BasicConnMgr, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	conns, streams := rcmgr.LimitVal(n), rcmgr.LimitVal(8*n)
	wide := rcmgr.ResourceLimits{
		Conns: conns, ConnsInbound: conns, ConnsOutbound: conns,
		Streams: streams, StreamsInbound: streams, StreamsOutbound: streams,
		FD: rcmgr.Unlimited, Memory: rcmgr.Unlimited64,
	}
	partial := rcmgr.PartialLimitConfig{System: wide, Transient: wide}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(scaling.AutoScale())))
	if err != nil {
		return nil, nil, fmt.Errorf("libp2p resource manager for %d connections: %w", n, err)
	}
	cm, err := bconnmgr.NewConnManager(n*8/10, n*9/10, bconnmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, nil, fmt.Errorf("libp2p connection manager for %d connections: %w", n, err)
	}
	return rm, cm, nil
}

// gatedResources is the host's resource manager with the Gater's say over
// which protocols an inbound stream may be set to: libp2p resets a stream
// whose protocol its resource scope refuses, before any handler runs (the
// DHT's, identify's and ping's included).
type gatedResources struct {
	network.ResourceManager
	gate *Gater
}

// OpenStream wraps the scope of inbound streams.
func (r *gatedResources) OpenStream(p peer.ID, dir network.Direction) (network.StreamManagementScope, error) {
	s, err := r.ResourceManager.OpenStream(p, dir)
	if err != nil || dir != network.DirInbound {
		return s, err
	}
	return &gatedStream{StreamManagementScope: s, peer: p, gate: r.gate}, nil
}

// GetConnLimit passes the wrapped manager's connection limit on, for
// libp2p's check against the connection manager.
func (r *gatedResources) GetConnLimit() int {
	if l, ok := r.ResourceManager.(connmgr.GetConnLimiter); ok {
		return l.GetConnLimit()
	}
	return 0
}

// gatedStream is an inbound stream's scope that asks the Gater before
// taking a protocol.
type gatedStream struct {
	network.StreamManagementScope
	peer peer.ID
	gate *Gater
}

// SetProtocol refuses a protocol the Gater does not open to the peer.
func (s *gatedStream) SetProtocol(proto protocol.ID) error {
	if err := s.gate.admitStream(s.peer, proto); err != nil {
		return fmt.Errorf("stream of %s on %s: %w", s.peer, proto, err)
	}
	return s.StreamManagementScope.SetProtocol(proto)
}

// circuitAddrs are the relayed addresses of a host that holds reservations
// on relays: <relay addr>/p2p/<relay>/p2p-circuit.
func circuitAddrs(relays []peer.AddrInfo) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, r := range relays {
		circuit := ma.StringCast("/p2p/" + r.ID.String() + "/p2p-circuit")
		for _, a := range r.Addrs {
			out = append(out, a.Encapsulate(circuit))
		}
	}
	return out
}

// ParseAddrInfos parses multiaddrs that end in /p2p/<peer ID>, merging
// addresses of the same peer.
func ParseAddrInfos(addrs []string) ([]peer.AddrInfo, error) {
	ms := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(strings.TrimSpace(a))
		if err != nil {
			return nil, fmt.Errorf("bad multiaddr %q: %w", a, err)
		}
		ms = append(ms, m)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(ms...)
	if err != nil {
		return nil, fmt.Errorf("peer addresses %v: %w", addrs, err)
	}
	return infos, nil
}
