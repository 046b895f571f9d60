package p2p

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/fedpb"
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
		err = Call(ctx, client, hub.ID, HealthPing, &fedpb.HealthPingRequest{}, &fedpb.HealthPingResponse{})
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
