package nodeagent

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/flightcodec"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// agentFixture is a real node agent over a database of the test
// ClickHouse, registered with an in-process hub host that asks it for
// tickets over libp2p, as the hub's activities do.
type agentFixture struct {
	agent *Agent
	hub   host.Host
	db    string
	// registered is the agent's first registration, as the hub got it.
	registered *wire.RegisterRequest
}

// startAgent starts a node agent named name over database db, with the
// direct (TCP) data plane, and a hub host it registers with.
func startAgent(tb testing.TB, name, db string) *agentFixture {
	tb.Helper()
	return startAgentOn(tb, name, db, config.DataPlaneDirect)
}

// startAgentOn is startAgent with the data plane plane.
func startAgentOn(tb testing.TB, name, db, plane string) *agentFixture {
	tb.Helper()
	return startAgentWith(tb, name, db, plane, func(*config.Node) {})
}

// startAgentWith is startAgentOn with edit applied to the agent's
// configuration before it starts. An agent that prefers TCP
// (SYNDB_P2P_PREFER=tcp) listens on TCP and QUIC, as its hub host does, and
// is given the hub's TCP address.
func startAgentWith(tb testing.TB, name, db, plane string, edit func(*config.Node)) *agentFixture {
	tb.Helper()
	openDB(tb, db) // creates the database
	cfg := config.Node{
		Name:    name,
		KeyFile: filepath.Join(tb.TempDir(), "node.key"), Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
		FlightAddr: "127.0.0.1:0", ClickHouse: config.ClickHouse{Addr: testClickHouse(tb), User: "default", Database: db},
		DataPlane: plane,
	}
	edit(&cfg)
	hubListen := []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	if cfg.PreferTCP() {
		hubListen = append(hubListen, "/ip4/127.0.0.1/tcp/0")
		cfg.Listen = append(cfg.Listen, "/ip4/127.0.0.1/tcp/0")
	}
	hub, err := p2p.NewHost(p2p.HostConfig{Key: newKey(tb), Listen: hubListen, PreferTCP: cfg.PreferTCP()})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = hub.Close() })
	regs := make(chan *wire.RegisterRequest, 1)
	p2p.Handle(hub, p2p.Register, slog.New(slog.DiscardHandler), nil,
		func(_ context.Context, _ peer.ID, req *wire.RegisterRequest) (*wire.RegisterResponse, error) {
			select {
			case regs <- req:
			default: // a later registration: the first is kept
			}
			return &wire.RegisterResponse{Name: req.GetName()}, nil
		})
	cfg.Hub = hub.Addrs()[0].String() + "/p2p/" + hub.ID().String()
	if cfg.PreferTCP() {
		for _, a := range hub.Addrs() {
			if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
				cfg.Hub = a.String() + "/p2p/" + hub.ID().String()
			}
		}
	}
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(tb, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	tb.Cleanup(func() { stop(); <-done })
	select {
	case <-a.Registered():
	case <-time.After(30 * time.Second):
		tb.Fatalf("node did not register: %v", a.LastError())
	}
	return &agentFixture{agent: a, hub: hub, db: db, registered: <-regs}
}

// TestRegisterNamesTheDatabase: the agent tells the hub which database of
// its ClickHouse holds its warehouse (what the hub's remote() reads).
func TestRegisterNamesTheDatabase(t *testing.T) {
	t.Parallel()
	f := startAgent(t, "lab-regdb", "register_db")
	require.Equal(t, "register_db", f.registered.GetClickhouseDatabase())
	require.Equal(t, "lab-regdb", f.registered.GetName())
}

// endpoint asks the node for a ticket over libp2p, from the hub's host.
func (f *agentFixture) endpoint(tb testing.TB, req *wire.GetFlightEndpointRequest) *wire.GetFlightEndpointResponse {
	tb.Helper()
	var resp wire.GetFlightEndpointResponse
	require.NoError(tb, p2p.Call(tb.Context(), f.hub, f.agent.PeerID(), p2p.FlightEndpoint, req, &resp))
	return &resp
}

// client connects to the Flight location ep names, from local (any
// address when empty).
func flightClient(tb testing.TB, ep *wire.GetFlightEndpointResponse, local string) *flightFixture {
	tb.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), flightcodec.DialOption()}
	if local != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}))
	}
	c, err := flight.NewClientWithMiddleware(strings.TrimPrefix(ep.GetLocation(), "grpc://"), nil, nil, opts...)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = c.Close() })
	return &flightFixture{client: c}
}

// replayRows builds n rows of dataset ds for the replay table.
func replayRows(tb testing.TB, ds uuid.UUID, n int) arrow.RecordBatch {
	tb.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: extensions.NewUUIDType()},
		{Name: "dataset_id", Type: extensions.NewUUIDType()},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for range n {
		b.Field(0).(*extensions.UUIDBuilder).Append(uuid.New())
		b.Field(1).(*extensions.UUIDBuilder).Append(ds)
	}
	rec := b.NewRecordBatch()
	tb.Cleanup(rec.Release)
	return rec
}

// TestFlightTicketReplay: a ticket the node handed the hub over libp2p is
// used once. A captured write ticket replayed within its lifetime loads
// nothing more; a read ticket reads once.
func TestFlightTicketReplay(t *testing.T) {
	t.Parallel()
	f := startAgent(t, "lab-replay", "flight_replay")
	conn := openDB(t, f.db)
	require.NoError(t, conn.Exec(t.Context(), "DROP TABLE IF EXISTS replay"))
	require.NoError(t, conn.Exec(t.Context(), "CREATE TABLE replay (id UUID, dataset_id UUID) ENGINE = MergeTree() ORDER BY id"))

	t.Run("write", func(t *testing.T) {
		ep := f.endpoint(t, &wire.GetFlightEndpointRequest{Write: true,
			Query: &wire.FlightQuery{Table: "replay", Columns: []string{"id", "dataset_id"}, DatasetIds: []string{dsA.String()}, Limit: 2}})
		c := flightClient(t, ep, "")
		res, err := c.put(t, ep.GetTicket(), nil, replayRows(t, dsA, 2))
		require.NoError(t, err)
		require.Equal(t, int64(2), res.Rows)
		require.Equal(t, uint64(2), count(t, conn, "replay"))

		// The same ticket again, as someone who captured it would.
		_, err = c.put(t, ep.GetTicket(), nil, replayRows(t, dsA, 1))
		requireCode(t, codes.PermissionDenied, err)
		require.ErrorContains(t, err, "ticket already used")
		require.Equal(t, uint64(2), count(t, conn, "replay"), "the replay loads nothing")
	})
	t.Run("read", func(t *testing.T) {
		ep := f.endpoint(t, &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "replay"}})
		c := flightClient(t, ep, "")
		_, rows, err := c.getRows(t, ep.GetTicket())
		require.NoError(t, err)
		require.Len(t, rows, int(count(t, conn, "replay")))
		_, _, err = c.getRows(t, ep.GetTicket())
		requireCode(t, codes.PermissionDenied, err)
		require.ErrorContains(t, err, "ticket already used")
	})
}

// TestFlightTicketBound: a ticket is good only over a connection from the
// IP address the hub's libp2p connection came from (127.0.0.1 here); the
// same ticket from 127.0.0.2, another host as far as the node can tell, is
// refused, and the ticket is still good for the hub afterwards.
func TestFlightTicketBound(t *testing.T) {
	t.Parallel()
	f := startAgent(t, "lab-bound", "flight_bound")
	conn := openDB(t, f.db)
	require.NoError(t, conn.Exec(t.Context(), "DROP TABLE IF EXISTS bound"))
	require.NoError(t, conn.Exec(t.Context(), "CREATE TABLE bound (id UUID, dataset_id UUID) ENGINE = MergeTree() ORDER BY id"))

	ep := f.endpoint(t, &wire.GetFlightEndpointRequest{Write: true,
		Query: &wire.FlightQuery{Table: "bound", DatasetIds: []string{dsA.String()}, Limit: 1}})
	pub, err := f.agent.PeerID().ExtractPublicKey()
	require.NoError(t, err)
	tk, err := VerifyTicket(pub, "lab-bound", ep.GetTicket(), time.Now())
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.1"}, tk.GetHolderIps())
	require.Equal(t, f.hub.ID().String(), tk.GetHolder())

	_, err = flightClient(t, ep, "127.0.0.2").put(t, ep.GetTicket(), nil, replayRows(t, dsA, 1))
	requireCode(t, codes.PermissionDenied, err)
	require.ErrorContains(t, err, "issued to a peer at 127.0.0.1, not 127.0.0.2:")
	require.Zero(t, count(t, conn, "bound"))

	res, err := flightClient(t, ep, "127.0.0.1").put(t, ep.GetTicket(), nil, replayRows(t, dsA, 1))
	require.NoError(t, err, "a refusal from elsewhere does not use the ticket up")
	require.Equal(t, int64(1), res.Rows)
	require.Equal(t, uint64(1), count(t, conn, "bound"))

	read := f.endpoint(t, &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "bound"}})
	_, _, err = flightClient(t, read, "127.0.0.2").getRows(t, read.GetTicket())
	requireCode(t, codes.PermissionDenied, err)
}

// TestFlightTicketRows: a write ticket carries the rows the hub validated
// and the node loads no more. A stream of more rows in one batch loads
// nothing; a second batch past the count is refused before it is inserted,
// leaving the rows the ticket allowed.
func TestFlightTicketRows(t *testing.T) {
	t.Parallel()
	f := startAgent(t, "lab-rows", "flight_rows")
	conn := openDB(t, f.db)
	require.NoError(t, conn.Exec(t.Context(), "DROP TABLE IF EXISTS capped"))
	require.NoError(t, conn.Exec(t.Context(), "CREATE TABLE capped (id UUID, dataset_id UUID) ENGINE = MergeTree() ORDER BY id"))
	write := func(n uint64) *wire.GetFlightEndpointResponse {
		return f.endpoint(t, &wire.GetFlightEndpointRequest{Write: true,
			Query: &wire.FlightQuery{Table: "capped", DatasetIds: []string{dsA.String()}, Limit: n}})
	}

	ep := write(3)
	_, err := flightClient(t, ep, "").put(t, ep.GetTicket(), nil, replayRows(t, dsA, 4))
	requireCode(t, codes.PermissionDenied, err)
	require.ErrorContains(t, err, "the ticket allows at most 3 rows: a batch of 4 after 0 loaded is refused")
	require.Zero(t, count(t, conn, "capped"), "nothing of the refused batch is kept")

	ep = write(3)
	_, err = flightClient(t, ep, "").put(t, ep.GetTicket(), nil, replayRows(t, dsA, 3), replayRows(t, dsA, 1))
	requireCode(t, codes.PermissionDenied, err)
	require.ErrorContains(t, err, "a batch of 1 after 3 loaded is refused")
	require.Equal(t, uint64(3), count(t, conn, "capped"), "the rows the ticket allowed, and not one more")

	ep = write(3)
	res, err := flightClient(t, ep, "").put(t, ep.GetTicket(), nil, replayRows(t, dsA, 2), replayRows(t, dsA, 1))
	require.NoError(t, err)
	require.Equal(t, putResult{Rows: 3, Batches: 2}, res)
	require.Equal(t, uint64(6), count(t, conn, "capped"))

	// A write ticket cannot be asked for without a row count.
	var resp wire.GetFlightEndpointResponse
	err = p2p.Call(t.Context(), f.hub, f.agent.PeerID(), p2p.FlightEndpoint, &wire.GetFlightEndpointRequest{Write: true,
		Query: &wire.FlightQuery{Table: "capped"}}, &resp)
	require.ErrorContains(t, err, "a write ticket needs query.limit")
}

// TestFlightTicketLifetime: a ticket lives a minute unless the hub asks for
// less, and never more than MaxTicketTTL.
func TestFlightTicketLifetime(t *testing.T) {
	t.Parallel()
	f := startAgent(t, "lab-ttl", "flight_ttl")
	conn := openDB(t, f.db)
	require.NoError(t, conn.Exec(t.Context(), "CREATE TABLE IF NOT EXISTS lived (id UUID) ENGINE = MergeTree() ORDER BY id"))
	pub, err := f.agent.PeerID().ExtractPublicKey()
	require.NoError(t, err)
	for _, c := range []struct {
		ttl  *durationpb.Duration
		want time.Duration
	}{
		{nil, time.Minute},
		{durationpb.New(10 * time.Second), 10 * time.Second},
		{durationpb.New(MaxTicketTTL), 5 * time.Minute},
	} {
		before := time.Now()
		ep := f.endpoint(t, &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "lived"}, Ttl: c.ttl})
		tk, err := VerifyTicket(pub, "lab-ttl", ep.GetTicket(), time.Now())
		require.NoError(t, err)
		exp := tk.GetExpiresAt().AsTime()
		require.WithinRange(t, exp, before.Add(c.want-time.Second), time.Now().Add(c.want+time.Second), "ttl %v", c.ttl)
		require.Len(t, tk.GetId(), ticketIDLen)
	}
	var resp wire.GetFlightEndpointResponse
	err = p2p.Call(t.Context(), f.hub, f.agent.PeerID(), p2p.FlightEndpoint, &wire.GetFlightEndpointRequest{
		Query: &wire.FlightQuery{Table: "lived"}, Ttl: durationpb.New(MaxTicketTTL + time.Second)}, &resp)
	require.ErrorContains(t, err, "ticket TTL 5m1s is outside 0..300s")
}

// TestUsedTickets: each ID is accepted once until its ticket expires;
// expired IDs are dropped so the set stays bounded, and a full set refuses
// rather than forgets.
func TestUsedTickets(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tk := func(id byte, exp time.Time) *wire.FlightTicket {
		return &wire.FlightTicket{Id: append(make([]byte, ticketIDLen-1), id), ExpiresAt: timestamppb.New(exp)}
	}
	u := newUsedTickets(2)
	require.NoError(t, u.use(tk(1, now.Add(time.Minute)), now))
	require.ErrorIs(t, u.use(tk(1, now.Add(time.Minute)), now.Add(59*time.Second)), ErrTicketUsed)
	require.NoError(t, u.use(tk(2, now.Add(2*time.Minute)), now))
	require.ErrorIs(t, u.use(tk(3, now.Add(time.Minute)), now.Add(30*time.Second)), errTicketsFull, "full: nothing forgotten early")
	require.Equal(t, 2, u.size())

	// A minute on, 1 has expired (VerifyTicket refuses it as expired) and
	// its place is free; 2 is still remembered.
	later := now.Add(time.Minute)
	require.NoError(t, u.use(tk(3, later.Add(time.Minute)), later))
	require.Equal(t, 2, u.size())
	require.ErrorIs(t, u.use(tk(2, now.Add(2*time.Minute)), later), ErrTicketUsed)

	// Expired IDs go at the next prune even when the set is not full.
	u = newUsedTickets(100)
	for i := range byte(10) {
		require.NoError(t, u.use(tk(i, now.Add(time.Second)), now))
	}
	require.NoError(t, u.use(tk(99, now.Add(3*time.Minute)), now.Add(2*time.Minute)))
	require.Equal(t, 1, u.size())
}

// addrConn is a connection that shows addr as its remote address, relayed
// with limits when limited.
type addrConn struct {
	network.Conn
	addr    ma.Multiaddr
	limited bool
}

func (c addrConn) RemoteMultiaddr() ma.Multiaddr { return c.addr }
func (c addrConn) Stat() network.ConnStats {
	return network.ConnStats{Stats: network.Stats{Limited: c.limited}}
}

// TestPeerIPs: a ticket's holder IPs are the addresses of the hub's direct
// connections, each once and unmapped; a relayed connection, limited or
// not (a relay may set no limits), shows the relay's address and adds
// none.
func TestPeerIPs(t *testing.T) {
	t.Parallel()
	conn := func(s string, limited bool) network.Conn {
		return addrConn{addr: ma.StringCast(s), limited: limited}
	}
	relay := "/ip4/203.0.113.7/udp/4000/quic-v1/p2p/12D3KooWGzBGLfUq2zGDxgm7PjYkYEi9RUqoLuRCFaXd3gEBQzK4/p2p-circuit"
	require.Equal(t, []string{"10.0.0.5", "2001:db8::1"}, peerIPs([]network.Conn{
		conn("/ip4/10.0.0.5/udp/4001/quic-v1", false),
		conn("/ip4/10.0.0.5/tcp/4001", false),
		conn("/ip6/::ffff:10.0.0.5/tcp/4001", false),
		conn("/ip6/2001:db8::1/tcp/4001", false),
		conn(relay, false),
		conn(relay, true),
	}))
	require.Empty(t, peerIPs([]network.Conn{conn(relay, false)}))
}
