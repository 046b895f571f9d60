package workers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
)

// fakeClusters is a registry of clusters that counts its reads.
type fakeClusters struct {
	byName map[string]domain.Cluster
	reads  int
}

func (f *fakeClusters) Cluster(_ context.Context, name string) (domain.Cluster, error) {
	f.reads++
	c, ok := f.byName[name]
	if !ok {
		return domain.Cluster{}, fmt.Errorf("cluster %q: %w", name, domain.ErrNotFound)
	}
	return c, nil
}

func newPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	require.NoError(t, err)
	id, err := peer.IDFromPublicKey(pub)
	require.NoError(t, err)
	return id
}

func TestGatewayRoutes(t *testing.T) {
	t.Parallel()
	a, b := newPeerID(t), newPeerID(t)
	st := &fakeClusters{byName: map[string]domain.Cluster{
		"lab-a": {Name: "lab-a", PeerID: a.String(), Addrs: []string{"/ip4/127.0.0.1/udp/4002/quic-v1", "not an address"}},
		"lab-b": {Name: "lab-b", PeerID: b.String()},
		"lab-x": {Name: "lab-x", PeerID: "garbage"},
	}}
	gater := p2p.NewGater()
	gater.Set(p2p.Access{Enrolled: map[peer.ID]string{a: "lab-a", b: "lab-other"}})
	now := time.Unix(1000, 0)
	r := newGatewayRoutes(st, gater)
	r.now = func() time.Time { return now }

	ai, err := r.resolve(t.Context(), "lab-a")
	require.NoError(t, err)
	require.Equal(t, a, ai.ID)
	require.Len(t, ai.Addrs, 1)
	require.Equal(t, "/ip4/127.0.0.1/udp/4002/quic-v1", ai.Addrs[0].String())
	_, err = r.resolve(t.Context(), "lab-a")
	require.NoError(t, err)
	require.Equal(t, 1, st.reads, "the second connection reuses the entry")

	for _, tc := range []struct{ name, node string }{
		{"unknown node", "lab-nope"},
		{"enrolled under another name", "lab-b"},
		{"bad peer ID", "lab-x"},
		{"not a node name", " INTERSERVER SECRET "},
		{"empty", ""},
	} {
		_, err := r.resolve(t.Context(), tc.node)
		require.Error(t, err, tc.name)
	}

	// Revoked: refused at once, though its entry is cached.
	gater.Set(p2p.Access{Enrolled: map[peer.ID]string{a: "lab-a"}, Revoked: map[peer.ID]bool{a: true}})
	_, err = r.resolve(t.Context(), "lab-a")
	require.Error(t, err)

	// Expired: read again.
	gater.Set(p2p.Access{Enrolled: map[peer.ID]string{a: "lab-a"}})
	reads := st.reads
	now = now.Add(routeTTL)
	_, err = r.resolve(t.Context(), "lab-a")
	require.NoError(t, err)
	require.Equal(t, reads+1, st.reads)
}
