package p2p

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/wire"
)

// addrConn is a connection that only knows its remote multiaddr.
type addrConn struct {
	network.Conn
	remote ma.Multiaddr
}

func (c addrConn) RemoteMultiaddr() ma.Multiaddr { return c.remote }

func TestConnPath(t *testing.T) {
	t.Parallel()
	const relayID = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	cases := []struct {
		name    string
		remote  string
		punched bool
		want    string
	}{
		{"quic", "/ip4/10.0.0.2/udp/4001/quic-v1", false, PathDirect},
		{"tcp", "/ip6/::1/tcp/4001", false, PathDirect},
		{"dns", "/dns4/lab.example.org/tcp/4001", false, PathDirect},
		{"circuit", "/ip4/10.0.0.1/udp/4001/quic-v1/p2p/" + relayID + "/p2p-circuit", false, PathRelayed},
		{"circuit after a punch", "/ip4/10.0.0.1/tcp/4001/p2p/" + relayID + "/p2p-circuit", true, PathRelayed},
		{"punched", "/ip4/203.0.113.7/udp/53012/quic-v1", true, PathHolePunched},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := ma.NewMultiaddr(tc.remote)
			require.NoError(t, err)
			require.Equal(t, tc.want, ConnPath(addrConn{remote: m}, tc.punched))
		})
	}
	require.Equal(t, PathDirect, AddrPath(nil, false))
}

func TestPunchesRecordsSpans(t *testing.T) {
	t.Parallel()
	var p Punches
	a, b := peer.ID("a"), peer.ID("b")
	end := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	trace := func(id peer.ID, evt any) {
		p.Trace(&holepunch.Event{Remote: id, Timestamp: end.UnixNano(), Evt: evt})
	}
	trace(a, &holepunch.StartHolePunchEvt{})
	require.False(t, p.Opened(a, end), "a start is no success")
	trace(a, &holepunch.EndHolePunchEvt{Success: true, EllapsedTime: 2 * time.Second})
	trace(b, &holepunch.EndHolePunchEvt{Success: false})
	cases := []struct {
		name   string
		id     peer.ID
		opened time.Time
		want   bool
	}{
		{"opened during the punch", a, end.Add(-time.Second), true},
		{"opened as it ended", a, end, true},
		{"opened before the punch", a, end.Add(-time.Minute), false},
		{"opened long after", a, end.Add(time.Minute), false},
		{"punch failed", b, end, false},
		{"never punched", peer.ID("c"), end, false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, p.Opened(tc.id, tc.opened), tc.name)
	}
	trace(a, &holepunch.EndHolePunchEvt{Success: false})
	require.False(t, p.Opened(a, end), "a failed punch forgets the earlier success")
	var none *Punches
	require.False(t, none.Opened(a, end))
}

// TestPathToPeers: the path the hub reports for a node it dialled straight
// is direct, and for one it reaches only through a relay, relayed; the
// oracle is the connection's own limited flag and remote address.
func TestPathToPeers(t *testing.T) {
	t.Parallel()
	hub := hostWith(t, HostConfig{})
	cl := NewClient(hub, nil).WithPunches(&Punches{})
	for _, id := range []string{peer.ID("nobody").String(), "not a peer id"} {
		path, transport := cl.Route(id)
		require.Empty(t, path)
		require.Empty(t, transport)
	}

	direct := hostWith(t, HostConfig{})
	require.NoError(t, hub.Connect(t.Context(), info(direct)))
	path, transport := cl.Route(direct.ID().String())
	require.Equal(t, PathDirect, path)
	require.Equal(t, "quic-v1", transport, "libp2p dials QUIC first by default")

	node := relayedNode(t, hub, nil)
	conns := hub.Network().ConnsToPeer(node.ID())
	require.NotEmpty(t, conns)
	want := PathRelayed
	for _, c := range conns {
		if !c.Stat().Limited {
			want = PathDirect // hole punching on loopback may already have upgraded it
		}
	}
	require.Equal(t, want, PathTo(hub, node.ID(), nil))
}

// TestConnTransportOfRelayed: a connection relayed over a QUIC hop is
// reported as QUIC, where libp2p's own connection state names no hop.
func TestConnTransportOfRelayed(t *testing.T) {
	t.Parallel()
	quicOnly := []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	hub := hostWith(t, HostConfig{Listen: quicOnly})
	node := relayedNode(t, hub, quicOnly)
	relayed := 0
	for _, c := range hub.Network().ConnsToPeer(node.ID()) {
		require.Equal(t, "quic-v1", ConnTransport(c), "%s", c.RemoteMultiaddr())
		if c.Stat().Limited {
			relayed++
			require.NotEqual(t, "quic-v1", c.ConnState().Transport, "libp2p does not report the hop of a relayed connection")
		}
	}
	t.Logf("%d relayed connections (hole punching on loopback may have upgraded the others)", relayed)
}

// relayedNode starts a relay and a node behind it (both listening on
// listen, QUIC and TCP when nil) that answers HealthPing, tells hub only the
// node's relayed address, and returns the node once hub has pinged it.
func relayedNode(t *testing.T, hub host.Host, listen []string) host.Host {
	t.Helper()
	relay := hostWith(t, HostConfig{Listen: listen, RelayService: true, RelayLimit: RelayLimit{Duration: time.Minute, Data: 1 << 20}})
	node := hostWith(t, HostConfig{Listen: listen, Reachability: "private", Relays: []peer.AddrInfo{info(relay)}})
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go KeepReservations(ctx, node, []peer.AddrInfo{info(relay)}, slog.New(slog.DiscardHandler))
	Handle(node, HealthPing, slog.New(slog.DiscardHandler), nil,
		func(_ context.Context, _ peer.ID, req *wire.HealthPingRequest) (*wire.HealthPingResponse, error) {
			return &wire.HealthPingResponse{Nonce: req.GetNonce()}, nil
		})
	hub.Peerstore().AddAddrs(node.ID(), circuitAddrs([]peer.AddrInfo{info(relay)}), time.Hour)
	var resp wire.HealthPingResponse
	require.Eventually(t, func() bool {
		return Call(t.Context(), hub, node.ID(), HealthPing, &wire.HealthPingRequest{Nonce: 1}, &resp) == nil
	}, 20*time.Second, 50*time.Millisecond)
	return node
}
