package p2p

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"
)

// An attempt refused by the per-IP bucket costs the peer nothing, and one
// refused by the per-peer bucket costs the address nothing. The buckets
// never refill here (a rate of one a year), so each count is exact.
func TestStrangerLimitRefusalCostsTheOtherBucketNothing(t *testing.T) {
	t.Parallel()
	const slow = 1.0 / (365 * 24 * 3600)
	now := time.Unix(1_700_000_000, 0)
	a, b := peer.ID("peer-a"), peer.ID("peer-b")
	x, y := ma.StringCast("/ip4/192.0.2.1/tcp/4001"), ma.StringCast("/ip4/198.51.100.7/udp/4001/quic-v1")

	t.Run("refused by IP", func(t *testing.T) {
		t.Parallel()
		s := newStrangerLimits(StrangerLimit{PerPeer: slow, PeerBurst: 2, PerIP: slow, IPBurst: 1})
		require.True(t, s.allowAt(a, x, now), "a's first try from x")
		for range 3 {
			require.False(t, s.allowAt(a, x, now), "x's one try is spent")
		}
		// a spent one of its two tries: the refusals by x's bucket did not
		// count, so it still has one from another address.
		require.True(t, s.allowAt(a, y, now), "a keeps its second try for y")
		require.False(t, s.allowAt(a, y, now), "a's two tries are spent")
	})

	t.Run("refused by peer", func(t *testing.T) {
		t.Parallel()
		s := newStrangerLimits(StrangerLimit{PerPeer: slow, PeerBurst: 1, PerIP: slow, IPBurst: 2})
		require.True(t, s.allowAt(a, x, now), "a's one try")
		for range 3 {
			require.False(t, s.allowAt(a, x, now), "a's one try is spent")
		}
		// x spent one of its two tries: a's refused retries did not count.
		require.True(t, s.allowAt(b, x, now), "x keeps its second try for b")
		require.False(t, s.allowAt(peer.ID("peer-c"), x, now), "x's two tries are spent")
	})

	t.Run("no IP", func(t *testing.T) {
		t.Parallel()
		s := newStrangerLimits(StrangerLimit{PerPeer: slow, PeerBurst: 1, PerIP: slow, IPBurst: 1})
		dns := ma.StringCast("/dns4/lab.example/tcp/4001")
		require.True(t, s.allowAt(a, dns, now))
		require.False(t, s.allowAt(a, dns, now), "the peer bucket still holds without an address")
		require.True(t, s.allowAt(b, x, now), "an address-less try costs no address")
	})
}
