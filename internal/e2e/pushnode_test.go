package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/devstack/fleet"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/schemas"
)

// byteProxy forwards every TCP connection it accepts to target and counts
// the bytes of each direction.
type byteProxy struct {
	ln     net.Listener
	target string
	// ctx bounds the dials to target; close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	// up counts the bytes from the client (the hub's ClickHouse) to the
	// target (a node's), down those from the target to the client.
	up, down atomic.Int64

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// startByteProxy listens on a free loopback port in front of target and
// stops, closing every connection, when the test ends.
func startByteProxy(t testing.TB, target string) *byteProxy {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	p := &byteProxy{ln: ln, target: target, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.serve)
	t.Cleanup(p.close)
	return p
}

// Addr is where the proxy listens.
func (p *byteProxy) Addr() string { return p.ln.Addr().String() }

func (p *byteProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.pipe(c) })
	}
}

// track registers conns to be closed by close; false once the proxy closed.
func (p *byteProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *byteProxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
		_ = c.Close()
	}
}

func (p *byteProxy) pipe(client net.Conn) {
	server, err := (&net.Dialer{}).DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	defer p.untrack(client, server)
	if !p.track(client, server) {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { forward(server, client, &p.up) })
	wg.Go(func() { forward(client, server, &p.down) })
	wg.Wait()
}

// forward copies src to dst, counting into n, then half-closes dst.
func forward(dst, src net.Conn, n *atomic.Int64) {
	_, _ = io.Copy(countingWriter{dst, n}, src)
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// close stops accepting, closes every connection and waits for the
// forwarding goroutines.
func (p *byteProxy) close() {
	p.cancel()
	_ = p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// pushNode is a test node whose warehouse is a ClickHouse server of its
// own, registered with the hub behind a byteProxy.
type pushNode struct {
	name  string
	proxy *byteProxy
	// addr and conn reach its ClickHouse directly, for the oracle.
	addr string
	conn driver.Conn
}

// startPushNode starts a ClickHouse server for node name, runs load (the
// statements that fill its tables) on it, starts a byteProxy in front of it
// and the node's agent, which reports the proxy as its ClickHouse address,
// and waits until the hub sees the node healthy. The hub reads every
// node's database syndb (SYNDB_REMOTE_DATABASE), so a node's rows need a
// server of their own rather than a database on lab-a's. When the test
// ends the node is stopped and removed from the hub, its database dropped
// and its server stopped.
func startPushNode(t testing.TB, name string, load ...string) *pushNode {
	t.Helper()
	ctx := t.Context()
	httpPort, err := devstack.FreePort()
	require.NoError(t, err)
	tcpPort, err := devstack.FreePort()
	require.NoError(t, err)
	dir := t.TempDir()
	ch := &devstack.ClickHouse{Name: "clickhouse-" + name, Dir: dir, HTTPPort: httpPort, TCPPort: tcpPort,
		LogFile: filepath.Join(dir, "process.log")}
	t.Cleanup(func() { require.NoError(t, ch.Stop(context.Background())) })
	require.NoError(t, ch.Start(ctx))
	conn := openCH(t, ch.Addr(), "syndb")
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(t, err)
	_, err = migrate.Apply(ctx, conn, migs, 0)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, dropDatabase(context.Background(), ch.Addr(), "syndb")) })
	began := time.Now()
	for _, sql := range load {
		require.NoError(t, conn.Exec(ctx, sql), sql)
	}
	t.Logf("%s: loaded in %s", name, time.Since(began).Round(time.Millisecond))
	proxy := startByteProxy(t, ch.Addr())
	require.NoError(t, fed.StartExtraNode(ctx, fleet.ExtraNode{Name: name, ClickHouseAddr: ch.Addr(), Database: "syndb",
		Env: map[string]string{"SYNDB_CLICKHOUSE_PUBLIC_ADDR": proxy.Addr(), "SYNDB_CLICKHOUSE_GATEWAY_ADDR": proxy.Addr()}}))
	t.Cleanup(func() {
		_ = fed.StopNode(context.Background(), name, false)
		status, raw := apiDoCtx(context.Background(), t, http.MethodDelete, "/v1/federation/clusters/"+name, "")
		require.Equal(t, http.StatusOK, status, string(raw))
	})
	waitHealth(t, name, health.Healthy, 2*time.Minute)
	return &pushNode{name: name, proxy: proxy, addr: ch.Addr(), conn: conn}
}
