package p2p

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/wire"
)

func hostWith(t *testing.T, c HostConfig) host.Host {
	t.Helper()
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "id.key"))
	require.NoError(t, err)
	c.Key = key
	if c.Listen == nil {
		c.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
	}
	h, err := NewHost(c)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func info(h host.Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

func startDiscovery(t *testing.T, h host.Host, c DiscoveryConfig) *Discovery {
	t.Helper()
	d, err := StartDiscovery(t.Context(), h, c, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// TestDHTFindsTheHub: a node given only a bootstrap peer finds the hub's
// advertisement in the federation DHT, then the hub's addresses.
func TestDHTFindsTheHub(t *testing.T) {
	t.Parallel()
	boot := hostWith(t, HostConfig{})
	startDiscovery(t, boot, DiscoveryConfig{Server: true})
	hub := hostWith(t, HostConfig{})
	hd := startDiscovery(t, hub, DiscoveryConfig{Server: true, Bootstrap: []peer.AddrInfo{info(boot)}})
	hd.Advertise(t.Context(), HubNamespace)

	node := hostWith(t, HostConfig{})
	nd := startDiscovery(t, node, DiscoveryConfig{Bootstrap: []peer.AddrInfo{info(boot)}})
	start := time.Now()
	var found []peer.AddrInfo
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		found, _ = nd.FindProviders(ctx, HubNamespace)
		return len(found) == 1
	}, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, hub.ID(), found[0].ID)
	t.Logf("hub found in the DHT %s after the node started", time.Since(start))

	// The hub never advertised a cluster namespace.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	none, err := nd.FindProviders(ctx, ClusterNamespace("lab-a"))
	require.NoError(t, err)
	require.Empty(t, none)

	ai, err := nd.FindPeer(t.Context(), hub.ID())
	require.NoError(t, err)
	require.NotEmpty(t, ai.Addrs)
}

// TestRelayCarriesMessages: a node reachable only through a relay answers
// a HealthPing from the hub over the relayed (limited) connection.
func TestRelayCarriesMessages(t *testing.T) {
	t.Parallel()
	relay := hostWith(t, HostConfig{RelayService: true, RelayLimit: RelayLimit{Duration: time.Minute, Data: 1 << 20}})
	node := hostWith(t, HostConfig{Reachability: "private", Relays: []peer.AddrInfo{info(relay)}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go KeepReservations(ctx, node, []peer.AddrInfo{info(relay)}, slog.New(slog.DiscardHandler))
	Handle(node, HealthPing, slog.New(slog.DiscardHandler), nil,
		func(_ context.Context, _ peer.ID, req *wire.HealthPingRequest) (*wire.HealthPingResponse, error) {
			return &wire.HealthPingResponse{Nonce: req.GetNonce(), Name: "lab-nat"}, nil
		})

	hub := hostWith(t, HostConfig{})
	circuit := circuitAddrs([]peer.AddrInfo{info(relay)})
	require.Subset(t, node.Addrs(), circuit, "the node advertises its relayed addresses")
	hub.Peerstore().AddAddrs(node.ID(), circuit, time.Hour) // and only those
	var resp wire.HealthPingResponse
	require.Eventually(t, func() bool {
		return Call(t.Context(), hub, node.ID(), HealthPing, &wire.HealthPingRequest{Nonce: 9}, &resp) == nil
	}, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, "lab-nat", resp.GetName())
	conns := hub.Network().ConnsToPeer(node.ID())
	require.NotEmpty(t, conns)
	require.True(t, conns[0].Stat().Limited, "the connection runs through the relay")
}

// TestPrivateNetwork: hosts with the same pre-shared key connect; a host
// with another key, or none, cannot.
func TestPrivateNetwork(t *testing.T) {
	t.Parallel()
	psk := make([]byte, 32)
	other := make([]byte, 32)
	other[0] = 1
	tcp := []string{"/ip4/127.0.0.1/tcp/0"}
	a := hostWith(t, HostConfig{PSK: psk, Listen: tcp})
	b := hostWith(t, HostConfig{PSK: psk, Listen: tcp})
	c := hostWith(t, HostConfig{PSK: other, Listen: tcp})
	d := hostWith(t, HostConfig{Listen: tcp})
	require.NoError(t, b.Connect(t.Context(), info(a)))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	require.Error(t, c.Connect(ctx, info(a)), "another key")
	require.Error(t, d.Connect(ctx, info(a)), "no key")

	_, err := NewHost(HostConfig{Key: nil, PSK: psk, Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})
	require.ErrorContains(t, err, "TCP")
}
