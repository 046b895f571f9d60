// Package p2ptest makes the libp2p hosts tests of other packages talk
// through: a fresh identity on loopback, closed when the test ends.
package p2ptest

import (
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/p2p"
)

// Host starts a host with a fresh identity listening on listen (QUIC on
// 127.0.0.1 when none is given) and closes it in tb's cleanup.
func Host(tb testing.TB, listen ...string) host.Host {
	tb.Helper()
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	key, err := p2p.LoadOrCreateKey(filepath.Join(tb.TempDir(), "id.key"))
	require.NoError(tb, err)
	h, err := p2p.NewHost(p2p.HostConfig{Key: key, Listen: listen})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = h.Close() })
	return h
}
