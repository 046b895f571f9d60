package nodeagent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// countingProxy forwards TCP connections to target and counts them: the
// oracle of whether anything reached ClickHouse.
type countingProxy struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
}

func startCountingProxy(t testing.TB, target string) *countingProxy {
	t.Helper()
	ln, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &countingProxy{ln: ln}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns.Add(1)
			p.wg.Go(func() {
				defer func() { _ = c.Close() }()
				up, err := new(net.Dialer).DialContext(context.Background(), "tcp", target)
				if err != nil {
					return
				}
				defer func() { _ = up.Close() }()
				go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
				_, _ = io.Copy(c, up)
			})
		}
	})
	t.Cleanup(func() { _ = ln.Close() })
	return p
}

// gatewayFixture is one ClickHouse server playing both the hub's and a
// node's (syndb.gw_t holds the node's rows), a node agent in front of it
// behind a counting proxy, and the hub's libp2p host and gateway.
type gatewayFixture struct {
	ch    *devstack.ClickHouse
	admin driver.Conn // the server as its admin: the oracle
	hub   driver.Conn // the server as the hub's query user
	proxy *countingProxy
	agent *Agent
	gw    *p2p.CHGateway

	hubHost host.Host
	node    string
}

func startGatewayFixture(t testing.TB, node string) *gatewayFixture {
	t.Helper()
	testClickHouse(t) // installs the server, or skips under -short
	ctx := t.Context()
	httpPort, err := devstack.FreePort()
	require.NoError(t, err)
	tcpPort, err := devstack.FreePort()
	require.NoError(t, err)
	dir := t.TempDir()
	ch := &devstack.ClickHouse{Name: "clickhouse-gateway", Dir: dir, HTTPPort: httpPort, TCPPort: tcpPort,
		QueryUser: devstack.QueryUser, QueryPassword: devstack.QueryPassword,
		GatewayUser: devstack.GatewayUser, GatewayPassword: devstack.GatewayPassword,
		LogFile: filepath.Join(dir, "server.out")}
	t.Cleanup(func() { _ = ch.Stop(context.Background()) })
	require.NoError(t, ch.Start(ctx))
	f := &gatewayFixture{ch: ch}
	f.admin, err = clickhouse.Open(ctx, config.ClickHouse{Addr: ch.Addr(), User: "default", Database: "syndb"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.admin.Close() })
	require.NoError(t, f.admin.Exec(ctx, "CREATE TABLE syndb.gw_t (n UInt64, k String) ENGINE = MergeTree ORDER BY n"))
	require.NoError(t, f.admin.Exec(ctx, "INSERT INTO syndb.gw_t SELECT number, toString(number % 7) FROM system.numbers LIMIT 5000"))
	f.hub, err = clickhouse.Dial(ctx, ch.QueryConfig(), clickhouse.DefaultPool)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.hub.Close() })
	f.proxy = startCountingProxy(t, ch.Addr())

	hub, err := p2p.NewHost(p2p.HostConfig{Key: newKey(t), Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = hub.Close() })
	p2p.Handle(hub, p2p.Register, slog.New(slog.DiscardHandler), nil,
		func(_ context.Context, _ peer.ID, req *wire.RegisterRequest) (*wire.RegisterResponse, error) {
			return &wire.RegisterResponse{Name: req.GetName()}, nil
		})
	cfg := config.Node{
		Name: node, Hub: hub.Addrs()[0].String() + "/p2p/" + hub.ID().String(),
		KeyFile: filepath.Join(t.TempDir(), "node.key"), Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
		FlightAddr: "127.0.0.1:0", ClickHouse: config.ClickHouse{Addr: f.proxy.ln.Addr().String(), User: "default", Database: "syndb"},
		GatewayUser: devstack.GatewayUser, GatewayPassword: devstack.GatewayPassword,
	}
	f.agent, err = New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.agent.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	select {
	case <-f.agent.Registered():
	case <-time.After(30 * time.Second):
		t.Fatalf("node did not register: %v", f.agent.LastError())
	}
	f.hubHost, f.node = hub, node
	f.gw = f.startGateway(t, "")
	return f
}

// startGateway starts a gateway on the hub's host that knows the one node,
// requiring password when it is not empty.
func (f *gatewayFixture) startGateway(t testing.TB, password string) *p2p.CHGateway {
	t.Helper()
	gw, err := p2p.StartCHGateway(t.Context(), f.hubHost, p2p.CHGatewayConfig{Addr: "127.0.0.1:0", Password: password,
		Resolve: func(_ context.Context, name string) (peer.AddrInfo, error) {
			if name != f.node {
				return peer.AddrInfo{}, fmt.Errorf("no node %q", name)
			}
			return peer.AddrInfo{ID: f.agent.PeerID()}, nil
		}}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, gw.Close()) })
	return gw
}

// aggregate is a small aggregate's answer.
type aggregate struct {
	Rows, Sum uint64
	Keys      uint64
}

func scanAggregate(t *testing.T, conn driver.Conn, from string) aggregate {
	t.Helper()
	var a aggregate
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(), sum(n), uniqExact(k) FROM "+from).Scan(&a.Rows, &a.Sum, &a.Keys))
	return a
}

// TestCHGatewayAnswersLikeDirect: the hub's ClickHouse reads the node
// through gateway → libp2p → node agent → ClickHouse, logged in there as
// the local read-only gateway user, and gets what a direct query gets.
func TestCHGatewayAnswersLikeDirect(t *testing.T) {
	t.Parallel()
	f := startGatewayFixture(t, "lab-gw")
	want := scanAggregate(t, f.admin, "syndb.gw_t")
	require.Equal(t, aggregate{Rows: 5000, Sum: 5000 * 4999 / 2, Keys: 7}, want)
	got := scanAggregate(t, f.hub, fmt.Sprintf("remote('%s', 'syndb', 'gw_t', 'lab-gw', '')", f.gw.Addr()))
	require.Equal(t, want, got)
	require.Positive(t, f.proxy.conns.Load(), "the node dialled its ClickHouse")

	// A dead replica first: remote() fails over to the gateway.
	dead := startCountingProxy(t, "127.0.0.1:1")
	require.NoError(t, dead.ln.Close())
	got = scanAggregate(t, f.hub, fmt.Sprintf("remote('%s|%s', 'syndb', 'gw_t', 'lab-gw', '')", dead.ln.Addr(), f.gw.Addr()))
	require.Equal(t, want, got)

	// The node's server ran the share as the gateway user (its query log).
	require.Eventually(t, func() bool {
		var n uint64
		err := f.admin.QueryRow(t.Context(), "SELECT count() FROM system.query_log WHERE user = ? AND query LIKE '%gw_t%'",
			devstack.GatewayUser).Scan(&n)
		return err == nil && n > 0
	}, 30*time.Second, 200*time.Millisecond, "no query of %s in system.query_log", devstack.GatewayUser)

	// The gateway user is read-only.
	gwUser, err := clickhouse.Dial(t.Context(), config.ClickHouse{Addr: f.ch.Addr(), User: devstack.GatewayUser,
		Password: devstack.GatewayPassword, Database: "syndb"}, clickhouse.DefaultPool)
	require.NoError(t, err)
	t.Cleanup(func() { _ = gwUser.Close() })
	err = gwUser.Exec(t.Context(), "CREATE TABLE syndb.gw_w (n UInt8) ENGINE = Memory")
	require.Equal(t, int32(164), clickhouse.Code(err), "readonly: %v", err)
}

// TestCHGatewayRefusals: a connection naming no node gets the gateway's
// NETWORK_ERROR; one without the gateway's password, WRONG_PASSWORD; a
// stranger's stream is reset at the node before a byte
// reaches its ClickHouse.
func TestCHGatewayRefusals(t *testing.T) {
	t.Parallel()
	f := startGatewayFixture(t, "lab-gr")
	before := f.proxy.conns.Load()

	var one uint64
	err := f.hub.QueryRow(t.Context(), fmt.Sprintf("SELECT count() FROM remote('%s', 'syndb', 'gw_t', 'lab-nope', '')", f.gw.Addr())).Scan(&one)
	require.Error(t, err)
	require.True(t, clickhouse.IsNetwork(err), "%v", err)
	require.Contains(t, err.Error(), `node "lab-nope" is not reachable`)

	// A gateway with a password refuses a connection without it.
	locked := f.startGateway(t, "gw-secret")
	err = f.hub.QueryRow(t.Context(), fmt.Sprintf("SELECT count() FROM remote('%s', 'syndb', 'gw_t', 'lab-gr', 'wrong')", locked.Addr())).Scan(&one)
	require.Equal(t, int32(p2p.CHWrongPassword), clickhouse.Code(err), "%v", err)
	require.Equal(t, before, f.proxy.conns.Load(), "nothing reached ClickHouse for the wrong password")
	require.NoError(t, f.hub.QueryRow(t.Context(),
		fmt.Sprintf("SELECT count() FROM remote('%s', 'syndb', 'gw_t', 'lab-gr', 'gw-secret')", locked.Addr())).Scan(&one))
	require.Equal(t, uint64(5000), one)
	before = f.proxy.conns.Load()

	stranger, err := p2p.NewHost(p2p.HostConfig{Key: newKey(t), Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = stranger.Close() })
	require.NoError(t, stranger.Connect(t.Context(), peer.AddrInfo{ID: f.agent.PeerID(), Addrs: f.agent.host.Addrs()}))
	s, err := stranger.NewStream(t.Context(), f.agent.PeerID(), p2p.ClickHouseStream)
	require.NoError(t, err, "the protocol is served; the stream is refused once open")
	hello := p2p.CHHello{ClientName: "stranger", Major: 18, Minor: 16, Revision: 54412, User: "lab-gr"}
	_, _ = s.Write(hello.Append(nil))
	require.NoError(t, s.SetReadDeadline(time.Now().Add(10*time.Second)))
	n, rerr := bufio.NewReader(s).Read(make([]byte, 1))
	require.Zero(t, n)
	require.Error(t, rerr)
	var ne net.Error
	require.False(t, errors.As(rerr, &ne) && ne.Timeout(), "the node reset the stream: %v", rerr)
	require.Equal(t, before, f.proxy.conns.Load(), "nothing reached ClickHouse for the refused connections")
}
