package p2p

import (
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"
)

// StrangerLimit bounds how often strangers (peers not enrolled) may try to
// register: per peer ID, and for all strangers from one IP address (an
// IPv6 /64, which one host usually holds whole).
type StrangerLimit struct {
	// PerPeer is registrations a second of one peer; PeerBurst the burst.
	PerPeer   rate.Limit
	PeerBurst int
	// PerIP is registrations a second from one address; IPBurst the burst.
	PerIP   rate.Limit
	IPBurst int
}

// DefaultStrangerLimit lets a node retry its registration every second or
// so, and a site start a few dozen nodes at once.
var DefaultStrangerLimit = StrangerLimit{PerPeer: 1, PeerBurst: 5, PerIP: 2, IPBurst: 20}

// maxTracked bounds each table of limiters; a limiter that refilled is
// forgotten first (it is the same as a new one).
const maxTracked = 8192

// strangerLimits holds one token bucket per stranger and per address.
type strangerLimits struct {
	l     StrangerLimit
	mu    sync.Mutex
	peers map[peer.ID]*rate.Limiter
	ips   map[netip.Prefix]*rate.Limiter
}

func newStrangerLimits(l StrangerLimit) *strangerLimits {
	return &strangerLimits{l: l, peers: map[peer.ID]*rate.Limiter{}, ips: map[netip.Prefix]*rate.Limiter{}}
}

// allow takes a token from p's bucket and from its address's, now.
func (s *strangerLimits) allow(p peer.ID, from ma.Multiaddr) bool {
	return s.allowAt(p, from, time.Now())
}

// allowAt takes a token from p's bucket and from its address's at now, or
// from neither: an attempt refused by one bucket costs the other nothing,
// so a peer refused for its address's crowd keeps its own budget for
// another address, and an address keeps its budget for other peers while
// one of them is refused for its own retries.
func (s *strangerLimits) allowAt(p peer.ID, from ma.Multiaddr, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	pl := limiter(s.peers, p, s.l.PerPeer, s.l.PeerBurst)
	if !hasToken(pl, now) {
		return false
	}
	var il *rate.Limiter
	if ip, ok := firstIP(from); ok {
		il = limiter(s.ips, addrKey(ip), s.l.PerIP, s.l.IPBurst)
		if !hasToken(il, now) {
			return false
		}
	}
	pl.AllowN(now, 1)
	if il != nil {
		il.AllowN(now, 1)
	}
	return true
}

// hasToken reports whether l (nil when its table is full) would allow one
// event at now, without taking it.
func hasToken(l *rate.Limiter, now time.Time) bool {
	return l != nil && (l.Limit() == rate.Inf || l.TokensAt(now) >= 1)
}

// limiter returns k's bucket, making one if there is room; nil if the
// table is full of buckets in use.
func limiter[K comparable](m map[K]*rate.Limiter, k K, r rate.Limit, burst int) *rate.Limiter {
	if l, ok := m[k]; ok {
		return l
	}
	if len(m) >= maxTracked {
		for key, l := range m {
			if l.Tokens() >= float64(burst) {
				delete(m, key)
			}
		}
		if len(m) >= maxTracked {
			return nil
		}
	}
	l := rate.NewLimiter(r, burst)
	m[k] = l
	return l
}

// addrKey is the bucket of an address: itself for IPv4, its /64 for IPv6.
func addrKey(ip netip.Addr) netip.Prefix {
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// firstIP is the first IP address in m (for a relayed connection, the
// relay's).
func firstIP(m ma.Multiaddr) (netip.Addr, bool) {
	for _, c := range m {
		switch c.Code() {
		case ma.P_IP4, ma.P_IP6:
			ip, ok := netip.AddrFromSlice(c.RawValue())
			return ip.Unmap(), ok
		}
	}
	return netip.Addr{}, false
}

// RemoteIP is the IP address a connection's remote multiaddr comes from
// directly. A relayed connection (through /p2p-circuit) has none: the
// address it shows is the relay's.
func RemoteIP(m ma.Multiaddr) (netip.Addr, bool) {
	for _, c := range m {
		if c.Code() == ma.P_CIRCUIT {
			return netip.Addr{}, false
		}
	}
	return firstIP(m)
}
