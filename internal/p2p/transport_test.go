package p2p

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/wire"
)

// bothTransports listens on QUIC and TCP on loopback.
var bothTransports = []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}

// transportHost starts a host with a fresh identity on QUIC and TCP.
func transportHost(t *testing.T, preferTCP bool) host.Host {
	t.Helper()
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "id.key"))
	require.NoError(t, err)
	h, err := NewHost(HostConfig{Key: key, Listen: bothTransports, PreferTCP: preferTCP})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// connState connects a to b at every address b listens on and returns the
// state of the one connection a ends up with.
func connState(t *testing.T, a, b host.Host) network.ConnectionState {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}))
	conns := a.Network().ConnsToPeer(b.ID())
	require.Len(t, conns, 1, "one connection to the peer")
	return conns[0].ConnState()
}

// TestTransportPreference: with PreferTCP a host that can reach its peer
// over both transports connects over TCP, secured by TLS 1.3; without it,
// over QUIC, as libp2p prefers. Either way a federation protocol answers
// over the connection.
func TestTransportPreference(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		preferTCP bool
		transport string
		security  string
	}{
		{"quic first", false, "quic-v1", ""},
		{"tcp first", true, "tcp", string(libp2ptls.ID)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := transportHost(t, tc.preferTCP), transportHost(t, false)
			pingEcho(b)
			st := connState(t, a, b)
			assert.Equal(t, tc.transport, st.Transport)
			if tc.security != "" {
				assert.Equal(t, tc.security, string(st.Security))
			}
			assertEchoes(t, a, b)
			path, transport := RouteTo(a, b.ID(), nil)
			assert.Equal(t, PathDirect, path)
			assert.Equal(t, tc.transport, transport)
		})
	}
}

// TestNoiseFallback: a peer that speaks only Noise over TCP (an older
// build's default) still connects, and is served.
func TestNoiseFallback(t *testing.T) {
	t.Parallel()
	ours := transportHost(t, true)
	pingEcho(ours)
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "old.key"))
	require.NoError(t, err)
	old, err := libp2p.New(libp2p.Identity(key), libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New))
	require.NoError(t, err)
	t.Cleanup(func() { _ = old.Close() })
	st := connState(t, old, ours)
	assert.Equal(t, "tcp", st.Transport)
	assert.Equal(t, string(noise.ID), string(st.Security))
	assertEchoes(t, old, ours)
}

// pingEcho answers HealthPing on h with the request's nonce.
func pingEcho(h host.Host) {
	Handle(h, HealthPing, slog.New(slog.DiscardHandler), nil,
		func(_ context.Context, _ peer.ID, req *wire.HealthPingRequest) (*wire.HealthPingResponse, error) {
			return &wire.HealthPingResponse{Nonce: req.GetNonce()}, nil
		})
}

// assertEchoes pings b from a over their connection.
func assertEchoes(t *testing.T, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var resp wire.HealthPingResponse
	require.NoError(t, Call(ctx, a, b.ID(), HealthPing, &wire.HealthPingRequest{Nonce: 7}, &resp))
	assert.Equal(t, uint64(7), resp.GetNonce())
}

// TestTCPFirstDialRanker: direct TCP addresses are dialled at once, QUIC
// and relayed ones only after them; without a TCP address the ranking is
// libp2p's default.
func TestTCPFirstDialRanker(t *testing.T) {
	t.Parallel()
	relay := "/ip4/203.0.113.9/udp/4000/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
	addrs := []ma.Multiaddr{
		ma.StringCast("/ip4/10.0.0.5/udp/4002/quic-v1"),
		ma.StringCast(relay),
		ma.StringCast("/ip4/10.0.0.5/tcp/4002"),
		ma.StringCast("/ip4/198.51.100.7/tcp/4002"),
	}
	ranked := TCPFirstDialRanker(addrs)
	require.Len(t, ranked, len(addrs))
	delay := map[string]time.Duration{}
	for _, d := range ranked {
		delay[d.Addr.String()] = d.Delay
	}
	assert.Zero(t, delay["/ip4/10.0.0.5/tcp/4002"])
	assert.Zero(t, delay["/ip4/198.51.100.7/tcp/4002"])
	assert.GreaterOrEqual(t, delay["/ip4/10.0.0.5/udp/4002/quic-v1"], TCPFirstGrace)
	assert.Greater(t, delay[relay], delay["/ip4/10.0.0.5/udp/4002/quic-v1"])

	quicOnly := []ma.Multiaddr{ma.StringCast("/ip4/10.0.0.5/udp/4002/quic-v1"), ma.StringCast(relay)}
	got := TCPFirstDialRanker(quicOnly)
	require.Len(t, got, 2)
	assert.Zero(t, got[0].Delay, "without TCP, QUIC is dialled at once")
}

// TestRouteToNamesTheConnectionStreamsRide: when two hosts dial each other
// at once, each on its own transport, they often end up with two
// connections; the route reported is that of the connection libp2p opens
// a new stream on, whichever it is.
func TestRouteToNamesTheConnectionStreamsRide(t *testing.T) {
	t.Parallel()
	two := 0
	for range 10 {
		a, b := transportHost(t, true), transportHost(t, false)
		pingEcho(a)
		pingEcho(b)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		errs := make(chan error, 2)
		go func() { errs <- a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}) }()
		go func() { errs <- b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}) }()
		for range 2 {
			// A simultaneous open may fail one side; the other connects.
			if err := <-errs; err != nil {
				t.Logf("one side's dial: %v", err)
			}
		}
		conns := a.Network().ConnsToPeer(b.ID())
		require.NotEmpty(t, conns)
		if len(conns) > 1 {
			two++
		}
		s, err := a.NewStream(ctx, b.ID(), HealthPing.ID)
		require.NoError(t, err)
		path, transport := RouteTo(a, b.ID(), nil)
		assert.Equal(t, PathDirect, path)
		assert.Equal(t, ConnTransport(s.Conn()), transport, "of %d connections", len(conns))
		_ = s.Reset()
		cancel()
	}
	t.Logf("%d of 10 pairs had two connections", two)
}
