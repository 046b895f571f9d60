package nodeagent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
)

// freePort returns a port nothing listens on (devstack's test ports).
func freePort(t *testing.T) int {
	t.Helper()
	port, err := devstack.FreePort()
	require.NoError(t, err)
	return port
}

// agentConfig is a node configuration whose hub (a fresh peer ID on a port
// nothing listens on) never answers.
func agentConfig(t *testing.T, p2pPort, flightPort int) config.Node {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	require.NoError(t, err)
	hub, err := peer.IDFromPublicKey(pub)
	require.NoError(t, err)
	return config.Node{
		Name: "lab-t", Hub: "/ip4/127.0.0.1/tcp/" + strconv.Itoa(freePort(t)) + "/p2p/" + hub.String(),
		Listen:     []string{"/ip4/127.0.0.1/tcp/" + strconv.Itoa(p2pPort)},
		KeyFile:    filepath.Join(t.TempDir(), "node.key"),
		FlightAddr: "127.0.0.1:" + strconv.Itoa(flightPort),
		ClickHouse: config.ClickHouse{Addr: "127.0.0.1:1", Database: "syndb"},
	}
}

// bound reports whether something listens on the TCP port.
func bound(port int) bool {
	l, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return true
	}
	_ = l.Close()
	return false
}

// agentGoroutines lists the goroutines running this package's or the p2p
// package's code.
func agentGoroutines() []string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "syndb/federation/nodeagent.") && !strings.Contains(g, "nodeagent.Test") ||
			strings.Contains(g, "syndb/federation/internal/p2p.") {
			out = append(out, g)
		}
	}
	return out
}

// TestNewStartsNothing: New refuses a bad configuration before it touches
// anything, and builds a good one without a goroutine, a listener or a
// connection; the peer ID is known already.
func TestNewStartsNothing(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name  string
		edit  func(*config.Node)
		error string
	}{
		{"bad name", func(c *config.Node) { c.Name = "Lab A" }, "SYNDB_NODE_NAME"},
		{"private-network key", func(c *config.Node) { c.PSK = "abc" }, "SYNDB_P2P_PSK"},
		{"hub without peer ID", func(c *config.Node) { c.Hub = "/ip4/127.0.0.1/tcp/4001" }, "SYNDB_HUB_ADDR"},
		{"flight address", func(c *config.Node) { c.FlightAddr = "nowhere" }, "SYNDB_FLIGHT_ADDR"},
		{"good", func(*config.Node) {}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p2pPort, flightPort := freePort(t), freePort(t)
			cfg := agentConfig(t, p2pPort, flightPort)
			tc.edit(&cfg)
			before := runtime.NumGoroutine()
			a, err := New(cfg, log)
			require.Equal(t, before, runtime.NumGoroutine(), "New started a goroutine")
			require.False(t, bound(p2pPort), "New bound the libp2p port")
			require.False(t, bound(flightPort), "New bound the Flight port")
			if tc.error != "" {
				require.ErrorContains(t, err, tc.error)
				_, serr := os.Stat(cfg.KeyFile)
				require.ErrorIs(t, serr, os.ErrNotExist, "a refused configuration wrote the key")
				return
			}
			require.NoError(t, err)
			require.NotEmpty(t, a.PeerID())
			a.Shutdown()
			require.ErrorContains(t, a.Run(t.Context()), "after Shutdown")
		})
	}
}

// TestAgentShutdownWaits: Run starts the host and the Flight server (the
// ports are bound, a registration is attempted); Shutdown returns only once
// Run has returned, the ports are free and no goroutine of the agent or its
// libp2p plumbing is left.
func TestAgentShutdownWaits(t *testing.T) {
	p2pPort, flightPort := freePort(t), freePort(t)
	a, err := New(agentConfig(t, p2pPort, flightPort), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	before := runtime.NumGoroutine()
	require.Empty(t, agentGoroutines())
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	deadline := time.Now().Add(30 * time.Second)
	for a.LastError() == nil {
		require.True(t, time.Now().Before(deadline), "no registration attempt")
		time.Sleep(10 * time.Millisecond) //nolint:forbidigo // polling with a deadline
	}
	require.True(t, bound(p2pPort), "Run did not start the libp2p host")
	require.True(t, bound(flightPort), "Run did not start the Flight server")
	require.NotEmpty(t, agentGoroutines())

	a.Shutdown()
	select {
	case err := <-done:
		require.NoError(t, err)
	default:
		t.Fatal("Shutdown returned before Run")
	}
	require.Empty(t, agentGoroutines(), "goroutines left after Shutdown")
	require.False(t, bound(flightPort), "Flight port still bound")
	require.False(t, bound(p2pPort), "libp2p port still bound")
	// The libraries' own goroutines wind down too (none leak).
	for runtime.NumGoroutine() > before {
		require.True(t, time.Now().Before(deadline.Add(30*time.Second)), "%d goroutines, %d before Run", runtime.NumGoroutine(), before)
		time.Sleep(10 * time.Millisecond) //nolint:forbidigo // polling with a deadline
	}
	a.Shutdown() // a second call returns at once
}
