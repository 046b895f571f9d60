package e2e

import (
	"context"
	"fmt"
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
func startByteProxy(t *testing.T, target string) *byteProxy {
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

// pushdownRows is how many neuron rows each pushdown node holds.
const pushdownRows = 2_000_000

// pushdownLimit bounds a node's bytes to the hub for an aggregate whose
// work is pushed down: O(groups), not O(rows).
const pushdownLimit = 256 << 10

// pushNode is a test node whose warehouse is a ClickHouse server of its
// own, registered with the hub behind a byteProxy.
type pushNode struct {
	name  string
	proxy *byteProxy
	// conn reaches its ClickHouse directly, for the oracle.
	conn driver.Conn
}

// startPushNode starts a ClickHouse server for node name with pushdownRows
// neuron rows in four datasets (dataset ids ending in base..base+3), a
// byteProxy in front of it, and the node's agent, which reports the proxy
// as its ClickHouse address; it waits until the hub sees the node healthy.
// The hub reads every node's database syndb (SYNDB_REMOTE_DATABASE), so a
// node's rows need a server of their own rather than a database on lab-a's.
func startPushNode(t *testing.T, name string, base int) *pushNode {
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
	require.NoError(t, conn.Exec(ctx, fmt.Sprintf(`INSERT INTO neuron (dataset_id, cid, voxel_volume, neuron_type, terminal_count)
		SELECT toUUID(concat('00000000-0000-4000-8000-0000000000', toString(%d + number %% 4))), generateUUIDv4(),
			toFloat64(intHash32(number) %% 100000) / 10000, ['pyramidal', 'interneuron', 'granule'][number %% 3 + 1],
			toUInt32(number %% 200)
		FROM numbers(%d)`, base, pushdownRows)))
	proxy := startByteProxy(t, ch.Addr())
	require.NoError(t, fed.StartExtraNode(ctx, fleet.ExtraNode{Name: name, ClickHouseAddr: ch.Addr(), Database: "syndb",
		Env: map[string]string{"SYNDB_CLICKHOUSE_PUBLIC_ADDR": proxy.Addr(), "SYNDB_CLICKHOUSE_GATEWAY_ADDR": proxy.Addr()}}))
	t.Cleanup(func() {
		_ = fed.StopNode(context.Background(), name, false)
		status, raw := apiDoCtx(context.Background(), t, http.MethodDelete, "/v1/federation/clusters/"+name, "")
		require.Equal(t, http.StatusOK, status, string(raw))
	})
	waitHealth(t, name, health.Healthy, 2*time.Minute)
	return &pushNode{name: name, proxy: proxy, conn: conn}
}

// pushFleet is the pushdown test's nodes.
type pushFleet []*pushNode

func (f pushFleet) names() []string {
	out := make([]string, len(f))
	for i, n := range f {
		out[i] = n.name
	}
	return out
}

// union is the union of each node's answer to direct, from its own
// ClickHouse: their dataset ids are disjoint, so a fleet's group is one
// node's.
func (f pushFleet) union(t *testing.T, direct string) [][]any {
	t.Helper()
	var out [][]any
	for _, n := range f {
		out = append(out, chRows(t, n.conn, direct)...)
	}
	return out
}

// ask runs sql over the nodes, checks the answer against want and returns
// the bytes each node sent the hub meanwhile.
func (f pushFleet) ask(t *testing.T, sql string, want [][]any, m match) []int64 {
	t.Helper()
	before := make([]int64, len(f))
	for i, n := range f {
		before[i] = n.proxy.down.Load()
	}
	ans := fedQuery(t, sql, f.names())
	sent := make([]int64, len(f))
	for i, n := range f {
		sent[i] = n.proxy.down.Load() - before[i]
		t.Logf("%s sent the hub %d bytes for %s", n.name, sent[i], sql)
	}
	require.Equal(t, http.StatusOK, ans.status, "%s\nrefused: %s", sql, ans.err)
	require.Empty(t, ans.meta.Error)
	require.ElementsMatch(t, f.names(), ans.meta.Included)
	requireRows(t, m, want, ans.rows, sql)
	return sent
}

// requirePushedDown asserts each node sent the hub O(groups) bytes.
func (f pushFleet) requirePushedDown(t *testing.T, sent []int64) {
	t.Helper()
	for i, s := range sent {
		require.Less(t, s, int64(pushdownLimit), "%s sent the hub O(groups) bytes, not its rows", f[i].name)
	}
}

// TestFedSQLPushdown runs aggregates over two nodes of 2,000,000 neurons
// each, whose warehouses the hub's ClickHouse reaches through byte-counting
// proxies, and checks the answers against each node's ClickHouse and the
// bytes each node sent the hub. The harness subtests hold with a compiler
// that ships rows; the pushed_down ones need aggregates computed per node.
func TestFedSQLPushdown(t *testing.T) {
	f := pushFleet{startPushNode(t, "push-a", 10), startPushNode(t, "push-b", 20)}
	t.Run("harness_count_by_dataset", func(t *testing.T) {
		sql := "SELECT dataset_id, count() AS n FROM neuron GROUP BY dataset_id"
		for i, sent := range f.ask(t, sql, f.union(t, sql), match{}) {
			require.Positive(t, sent, "the hub read %s through its proxy", f[i].name)
		}
	})
	t.Run("harness_rows_shipped_are_counted", func(t *testing.T) {
		n := f[0]
		want := chRows(t, n.conn, "SELECT count() FROM neuron WHERE terminal_count < 5")
		before := n.proxy.down.Load()
		ans := fedQuery(t, "SELECT cid, voxel_volume FROM neuron WHERE terminal_count < 5", []string{n.name})
		sent := n.proxy.down.Load() - before
		t.Logf("%s sent the hub %d bytes for %d rows", n.name, sent, len(ans.rows))
		require.Equal(t, http.StatusOK, ans.status, ans.err)
		require.InDelta(t, want[0][0], float64(len(ans.rows)), 0)
		require.Greater(t, sent, int64(pushdownLimit), "rows shipped to the hub show in the proxy's count")
	})
	t.Run("avg_pushed_down", func(t *testing.T) {
		sql := "SELECT dataset_id, count(), avg(voxel_volume) FROM neuron GROUP BY dataset_id"
		f.requirePushedDown(t, f.ask(t, sql, f.union(t, sql), match{}))
	})
	t.Run("quantile_pushed_down", func(t *testing.T) {
		// quantile samples: its answer is within 2% of the exact quantile.
		want := f.union(t, "SELECT dataset_id, count(), avg(voxel_volume), quantileExact(0.9)(voxel_volume) FROM neuron GROUP BY dataset_id")
		f.requirePushedDown(t, f.ask(t,
			"SELECT dataset_id, count(), avg(voxel_volume), quantile(0.9)(voxel_volume) FROM neuron GROUP BY dataset_id",
			want, match{colTol: map[int]float64{3: 0.02}}))
	})
	t.Run("count_bytes_logged", func(t *testing.T) {
		var total float64
		for _, r := range f.union(t, "SELECT count() FROM neuron") {
			total += r[0].(float64)
		}
		require.InDelta(t, float64(len(f)*pushdownRows), total, 0)
		f.ask(t, "SELECT count() AS n FROM neuron", [][]any{{total}}, match{})
	})
}
