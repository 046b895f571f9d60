package nodeagent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// discoveredHub is a libp2p host that advertises itself as the hub in a
// DHT of its own (bootstrapped by a second host), and the configuration of
// a node that finds its hub there, with none pinned. chAddr is the node's
// ClickHouse gateway address.
func discoveredHub(t *testing.T, chAddr string) (host.Host, config.Node) {
	t.Helper()
	ctx := t.Context()
	quic := []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	boot, err := p2p.NewHost(p2p.HostConfig{Key: newKey(t), Listen: quic})
	require.NoError(t, err)
	t.Cleanup(func() { _ = boot.Close() })
	bd, err := p2p.StartDiscovery(ctx, boot, p2p.DiscoveryConfig{Server: true}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = bd.Close() })
	hub, err := p2p.NewHost(p2p.HostConfig{Key: newKey(t), Listen: quic})
	require.NoError(t, err)
	t.Cleanup(func() { _ = hub.Close() })
	hd, err := p2p.StartDiscovery(ctx, hub, p2p.DiscoveryConfig{Server: true,
		Bootstrap: []peer.AddrInfo{{ID: boot.ID(), Addrs: boot.Addrs()}}}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = hd.Close() })
	hd.Advertise(ctx, p2p.HubNamespace)
	cfg := config.Node{Name: "lab-tofu", KeyFile: filepath.Join(t.TempDir(), "node.key"), Listen: quic,
		Discovery:  config.Discovery{Bootstrap: []string{boot.Addrs()[0].String() + "/p2p/" + boot.ID().String()}},
		FlightAddr: "127.0.0.1:0", EnrollmentToken: "enrol-secret",
		ClickHouse:  config.ClickHouse{Addr: "127.0.0.1:1", User: "default", Database: "syndb"},
		GatewayUser: "syndb_gateway", GatewayPassword: "gw-password", GatewayAddr: chAddr}
	return hub, cfg
}

// runAgent runs an agent of cfg until the test ends.
func runAgent(t *testing.T, cfg config.Node) *Agent {
	t.Helper()
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// TestCandidateHubThatRefusesIsNotServed: with no hub pinned, a peer that
// advertises itself as the hub and, while the node's registration with it
// is open, opens a ClickHouse stream to the node, then refuses the
// registration, has its stream reset: nothing reaches the lab's ClickHouse,
// and it is not pinned.
func TestCandidateHubThatRefusesIsNotServed(t *testing.T) {
	t.Parallel()
	ch, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ch.Close() })
	var reached atomic.Int32
	go func() {
		for {
			c, err := ch.Accept()
			if err != nil {
				return
			}
			reached.Add(1)
			_ = c.Close()
		}
	}()
	rogue, cfg := discoveredHub(t, ch.Addr().String())
	ended := make(chan error, 1)
	var opened atomic.Bool
	p2p.Handle(rogue, p2p.Register, slog.New(slog.DiscardHandler), nil,
		func(ctx context.Context, from peer.ID, _ *wire.RegisterRequest) (*wire.RegisterResponse, error) {
			if opened.CompareAndSwap(false, true) {
				s, err := p2p.DialStream(ctx, rogue, from, p2p.ClickHouseStream)
				if err != nil {
					ended <- err
				} else {
					_, _ = s.Write(p2p.CHHello{ClientName: "rogue", Revision: 54412, User: "x"}.Append(nil))
					go func() {
						_, err := io.ReadAll(s)
						ended <- err
					}()
				}
			}
			return nil, p2p.Errorf(p2p.CodeUnavailable, "busy, try the next hub")
		})
	a := runAgent(t, cfg)
	select {
	case err := <-ended:
		require.Error(t, err, "the candidate's stream is reset, not served")
	case <-time.After(40 * time.Second):
		t.Fatal("the node never registered with the candidate, or its stream never ended")
	}
	require.Zero(t, reached.Load(), "a connection reached the lab's ClickHouse")
	require.Empty(t, a.HubID())
}

// TestCandidateHubThatAcceptsIsServed: a hub found by discovery that calls
// the node while its registration is still open (before its answer reaches
// the node) is answered once it has accepted, and is pinned.
func TestCandidateHubThatAcceptsIsServed(t *testing.T) {
	t.Parallel()
	hub, cfg := discoveredHub(t, "127.0.0.1:1")
	pinged := make(chan error, 1)
	var called atomic.Bool
	p2p.Handle(hub, p2p.Register, slog.New(slog.DiscardHandler), nil,
		func(ctx context.Context, from peer.ID, req *wire.RegisterRequest) (*wire.RegisterResponse, error) {
			if called.CompareAndSwap(false, true) {
				go func() {
					pinged <- p2p.Call(context.Background(), hub, from, p2p.HealthPing, &wire.HealthPingRequest{}, &wire.HealthPingResponse{})
				}()
			}
			return &wire.RegisterResponse{Name: req.GetName()}, nil
		})
	a := runAgent(t, cfg)
	select {
	case err := <-pinged:
		require.NoError(t, err)
	case <-time.After(40 * time.Second):
		t.Fatal("the node never registered with the hub, or never answered its ping")
	}
	require.Equal(t, hub.ID(), a.HubID())
}
