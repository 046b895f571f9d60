package p2p

import (
	"bufio"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/wire"
)

func gatedHost(t *testing.T, g *Gater) (h interface{ ID() peer.ID }, info peer.AddrInfo) {
	t.Helper()
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "id.key"))
	require.NoError(t, err)
	hh, err := NewHost(HostConfig{Key: key, Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}, Gater: g})
	require.NoError(t, err)
	t.Cleanup(func() { _ = hh.Close() })
	return hh, peer.AddrInfo{ID: hh.ID(), Addrs: hh.Addrs()}
}

func TestGater(t *testing.T) {
	t.Parallel()
	g := NewGater()
	_, hub := gatedHost(t, g)
	client := newTestHost(t)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := client.Connect(ctx, hub)
	if err == nil {
		err = Call(ctx, client, hub.ID, HealthPing, &wire.HealthPingRequest{}, &wire.HealthPingResponse{})
	}
	t.Logf("refused after %s: %v", time.Since(start), err)
	require.Error(t, err, "a closed hub admits nobody")
	require.Less(t, time.Since(start), 5*time.Second, "refusal must be prompt")

	g.Set(Access{Open: true})
	require.NoError(t, client.Connect(t.Context(), hub), "an open enrollment window admits unknown peers")

	g.Set(Access{Open: true, Revoked: map[peer.ID]bool{client.ID(): true}})
	require.False(t, g.Admits(client.ID()), "revoked beats open")
	g.Set(Access{Enrolled: map[peer.ID]string{client.ID(): "lab-a"}})
	require.True(t, g.Admits(client.ID()))
	name, ok := g.Enrolled(client.ID())
	require.True(t, ok)
	require.Equal(t, "lab-a", name)
}

// gatedHub is a hub-like host: gated by g, a DHT server, and a Register
// handler guarded by g that accepts only the token "good" (and then
// enrolls the caller).
func gatedHub(t *testing.T, g *Gater) (host.Host, *atomic.Int32) {
	t.Helper()
	h := hostWith(t, HostConfig{Gater: g})
	startDiscovery(t, h, DiscoveryConfig{Server: true, RoutingFilter: g.Known})
	served := &atomic.Int32{}
	Handle(h, Register, slog.New(slog.DiscardHandler), g,
		func(_ context.Context, from peer.ID, req *wire.RegisterRequest) (*wire.RegisterResponse, error) {
			served.Add(1)
			if req.GetEnrollmentToken() != "good" {
				return nil, Errorf(CodeUnauthorized, "registration refused")
			}
			g.Set(Access{Open: true, Enrolled: map[peer.ID]string{from: req.GetName()}})
			return &wire.RegisterResponse{Name: req.GetName()}, nil
		})
	return h, served
}

// kadPing asks h's DHT at p for the peers closest to p; nil if it answered.
func kadPing(ctx context.Context, h host.Host, p peer.ID) error {
	s, err := h.NewStream(ctx, p, DHTPrefix+"/kad/1.0.0")
	if err != nil {
		return err
	}
	defer func() { _ = s.Reset() }()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if err := writeFrame(s, &dhtpb.Message{Type: dhtpb.Message_FIND_NODE, Key: []byte(p)}, 1<<10); err != nil {
		return err
	}
	return readFrame(bufio.NewReader(s), &dhtpb.Message{}, 1<<20)
}

func waitClosed(t *testing.T, h host.Host, p peer.ID, why string) {
	t.Helper()
	require.Eventually(t, func() bool { return h.Network().Connectedness(p) != network.Connected },
		5*time.Second, 10*time.Millisecond, why)
}

func TestStrangersGetOnlyRegister(t *testing.T) {
	t.Parallel()
	g := NewGater()
	g.Set(Access{Open: true})
	hub, served := gatedHub(t, g)
	ctx := t.Context()

	// The DHT does not answer a stranger, and its connection is closed.
	stranger := newTestHost(t)
	require.NoError(t, stranger.Connect(ctx, info(hub)))
	require.Error(t, kadPing(ctx, stranger, hub.ID()), "the DHT answered a stranger")
	waitClosed(t, stranger, hub.ID(), "a stranger's connection outlives a refused DHT stream")

	// Nor does ping.
	require.NoError(t, stranger.Connect(ctx, info(hub)))
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	res := <-ping.Ping(pctx, stranger, hub.ID())
	cancel()
	require.Error(t, res.Error, "ping answered a stranger")
	waitClosed(t, stranger, hub.ID(), "a stranger's connection outlives a refused ping")

	// A refused registration is answered, then the connection closed.
	err := Call(ctx, stranger, hub.ID(), Register, &wire.RegisterRequest{Name: "lab-x", EnrollmentToken: "bad"}, &wire.RegisterResponse{})
	require.True(t, IsCode(err, CodeUnauthorized), "the refusal reaches the stranger: %v", err)
	waitClosed(t, stranger, hub.ID(), "a stranger's connection outlives its refused registration")

	// With the token it registers (identify was refused to it, which does
	// not stop it), and from then on the DHT answers it.
	node := newTestHost(t)
	connect(t, node, hub)
	require.NoError(t, Call(ctx, node, hub.ID(), Register, &wire.RegisterRequest{Name: "lab-x", EnrollmentToken: "good"}, &wire.RegisterResponse{}))
	require.NoError(t, kadPing(ctx, node, hub.ID()), "an enrolled node uses the DHT")
	require.Equal(t, int32(2), served.Load())
	require.Equal(t, network.Connected, node.Network().Connectedness(hub.ID()))
}

func TestStrangersAreRateLimited(t *testing.T) {
	t.Parallel()
	g := NewGaterWith(StrangerLimit{PerPeer: 0.1, PeerBurst: 3, PerIP: 0.1, IPBurst: 6})
	g.Set(Access{Open: true})
	hub, served := gatedHub(t, g)
	ctx := t.Context()
	try := func(h host.Host) error {
		h.Peerstore().AddAddrs(hub.ID(), hub.Addrs(), time.Hour)
		return Call(ctx, h, hub.ID(), Register, &wire.RegisterRequest{Name: "lab-x", EnrollmentToken: "guess"}, &wire.RegisterResponse{})
	}
	limited := func(err error) bool { return IsCode(err, CodeUnavailable) && strings.Contains(err.Error(), "too many") }

	// Per peer: three tries, then the limit.
	hammer := newTestHost(t)
	var got []bool
	for range 5 {
		got = append(got, limited(try(hammer)))
	}
	require.Equal(t, []bool{false, false, false, true, true}, got)
	require.Equal(t, int32(3), served.Load(), "a limited try never reaches the handler")

	// Per IP: three more peers from 127.0.0.1 use up its six, the fourth
	// (on its first try) is limited.
	for range 3 {
		require.False(t, limited(try(newTestHost(t))))
	}
	require.True(t, limited(try(newTestHost(t))), "a seventh registration from one IP")
	require.Equal(t, int32(6), served.Load())
}

func TestKnownPeersGetEverything(t *testing.T) {
	t.Parallel()
	g := NewGater()
	hub, _ := gatedHub(t, g)
	node := newTestHost(t)
	g.Set(Access{Enrolled: map[peer.ID]string{node.ID(): "lab-a"}})
	require.NoError(t, node.Connect(t.Context(), info(hub)))
	require.NoError(t, kadPing(t.Context(), node, hub.ID()))
	res := <-ping.Ping(t.Context(), node, hub.ID())
	require.NoError(t, res.Error)
}

func TestRemoteIP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr string
		want string // "" for none
	}{
		{"/ip4/10.0.0.2/tcp/4001", "10.0.0.2"},
		{"/ip4/127.0.0.1/udp/4001/quic-v1", "127.0.0.1"},
		{"/ip6/2001:db8::1/udp/4001/quic-v1", "2001:db8::1"},
		{"/ip6/::ffff:10.0.0.2/tcp/4001", "10.0.0.2"},
		{"/ip4/10.0.0.9/udp/4000/quic-v1/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE/p2p-circuit", ""},
	} {
		ip, ok := RemoteIP(ma.StringCast(tc.addr))
		if tc.want == "" {
			require.False(t, ok, tc.addr)
			continue
		}
		require.True(t, ok, tc.addr)
		require.Equal(t, tc.want, ip.String(), tc.addr)
	}
}

// A node whose relay is the hub asks for a reservation as soon as it
// starts: refused while it is a stranger, but its connection stays, so its
// registration on it goes through.
func TestStrangerReservationRefusedQuietly(t *testing.T) {
	t.Parallel()
	g := NewGater()
	g.Set(Access{Open: true})
	hub := hostWith(t, HostConfig{Gater: g, RelayService: true, RelayLimit: RelayLimit{Duration: time.Minute, Data: 1 << 20}})
	Handle(hub, Register, slog.New(slog.DiscardHandler), g,
		func(_ context.Context, from peer.ID, req *wire.RegisterRequest) (*wire.RegisterResponse, error) {
			g.Set(Access{Open: true, Enrolled: map[peer.ID]string{from: req.GetName()}})
			return &wire.RegisterResponse{Name: req.GetName()}, nil
		})
	node := newTestHost(t)
	_, err := client.Reserve(t.Context(), node, info(hub))
	require.Error(t, err, "a stranger reserved a relay slot")
	require.Equal(t, network.Connected, node.Network().Connectedness(hub.ID()), "a refused reservation keeps the connection")
	require.NoError(t, Call(t.Context(), node, hub.ID(), Register, &wire.RegisterRequest{Name: "lab-nat"}, &wire.RegisterResponse{}))
	_, err = client.Reserve(t.Context(), node, info(hub))
	require.NoError(t, err, "an enrolled node reserves a slot")
}
