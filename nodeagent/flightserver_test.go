package nodeagent

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/flightcodec"
	"github.com/syndb/federation/internal/wire"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopTestClickHouse()
	os.Exit(code)
}

// testCH is a clickhouse-server private to this test binary, started on
// first use and stopped by TestMain.
var testCH struct {
	once sync.Once
	ch   *devstack.ClickHouse
	dir  string
	err  error
}

// testClickHouse returns the native address of the test binary's
// clickhouse-server, installing and starting it on first use.
func testClickHouse(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starts a real clickhouse-server; skipped under -short")
	}
	testCH.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var pkgs []devstack.Package
		for _, p := range devstack.Packages {
			if p.Name == "clickhouse-server" {
				pkgs = append(pkgs, p)
			}
		}
		if testCH.err = devstack.EnsurePackages(ctx, slog.New(slog.DiscardHandler), pkgs); testCH.err != nil {
			return
		}
		if testCH.dir, testCH.err = os.MkdirTemp("", "syndb-flight-ch-"); testCH.err != nil {
			return
		}
		var httpPort, tcpPort int
		if httpPort, testCH.err = devstack.FreePort(); testCH.err != nil {
			return
		}
		if tcpPort, testCH.err = devstack.FreePort(); testCH.err != nil {
			return
		}
		ch := &devstack.ClickHouse{Name: "clickhouse-flight", Dir: testCH.dir, HTTPPort: httpPort, TCPPort: tcpPort,
			LogFile: filepath.Join(testCH.dir, "server.out")}
		if testCH.err = ch.Start(ctx); testCH.err == nil {
			testCH.ch = ch
		}
	})
	require.NoError(tb, testCH.err, "start clickhouse-server")
	return testCH.ch.Addr()
}

func stopTestClickHouse() {
	if testCH.ch != nil {
		_ = testCH.ch.Stop(context.Background())
	}
	if testCH.dir != "" {
		_ = os.RemoveAll(testCH.dir)
	}
}

// openDB connects to database db of the test server, creating it.
func openDB(tb testing.TB, db string) driver.Conn {
	tb.Helper()
	conn, err := clickhouse.Open(tb.Context(), config.ClickHouse{Addr: testClickHouse(tb), User: "default", Database: db})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

// peakAllocator is a Go allocator that tracks the bytes it holds and the
// most it ever held.
type peakAllocator struct {
	mem       memory.GoAllocator
	cur, peak atomic.Int64
}

func (p *peakAllocator) grow(n int) {
	c := p.cur.Add(int64(n))
	for {
		old := p.peak.Load()
		if c <= old || p.peak.CompareAndSwap(old, c) {
			return
		}
	}
}

func (p *peakAllocator) Allocate(size int) []byte {
	p.grow(size)
	return p.mem.Allocate(size)
}

func (p *peakAllocator) Reallocate(size int, b []byte) []byte {
	p.grow(size - len(b))
	return p.mem.Reallocate(size, b)
}

func (p *peakAllocator) Free(b []byte) {
	p.cur.Add(-int64(len(b)))
	p.mem.Free(b)
}

// flightFixture is a node's Flight service on a loopback port and a client.
type flightFixture struct {
	name   string
	key    crypto.PrivKey
	mem    *peakAllocator
	client flight.Client
}

func newKey(tb testing.TB) crypto.PrivKey {
	tb.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(tb, err)
	return key
}

// startFlightService serves a Flight service over conn, changed by opts.
func startFlightService(tb testing.TB, name string, conn func(context.Context) (driver.Conn, error),
	opts ...func(*flightService)) *flightFixture {
	tb.Helper()
	f := &flightFixture{name: name, key: newKey(tb), mem: &peakAllocator{}}
	svc := &flightService{name: name, key: f.key, conn: conn, log: slog.New(slog.DiscardHandler), mem: f.mem}
	for _, o := range opts {
		o(svc)
	}
	srv := newFlightServer(svc)
	lis, err := new(net.ListenConfig).Listen(tb.Context(), "tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(srv.Stop)
	f.client, err = flight.NewClientWithMiddleware(lis.Addr().String(), nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()), flightcodec.DialOption())
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = f.client.Close() })
	return f
}

func fixedConn(conn driver.Conn) func(context.Context) (driver.Conn, error) {
	return func(context.Context) (driver.Conn, error) { return conn, nil }
}

// ticket signs a read ticket for q with key, issued by node, expiring at exp.
func ticket(tb testing.TB, key crypto.PrivKey, node string, exp time.Time, q *wire.FlightQuery) []byte {
	tb.Helper()
	return signedTicket(tb, key, node, exp, q, false)
}

// writeTicket signs a write (DoPut) ticket.
func writeTicket(tb testing.TB, key crypto.PrivKey, node string, exp time.Time, q *wire.FlightQuery) []byte {
	tb.Helper()
	return signedTicket(tb, key, node, exp, q, true)
}

func signedTicket(tb testing.TB, key crypto.PrivKey, node string, exp time.Time, q *wire.FlightQuery, write bool) []byte {
	tb.Helper()
	return signTicket(tb, key, &wire.FlightTicket{Node: node, Holder: "12D3KooWHub", HolderIps: []string{"127.0.0.1"},
		ExpiresAt: timestamppb.New(exp), Query: q, Write: write})
}

// signTicket gives t a random ID and an issue time of now, unless it has
// them, and signs it.
func signTicket(tb testing.TB, key crypto.PrivKey, t *wire.FlightTicket) []byte {
	tb.Helper()
	if t.IssuedAt == nil {
		t.IssuedAt = timestamppb.Now()
	}
	if t.Id == nil {
		t.Id = make([]byte, ticketIDLen)
		_, err := rand.Read(t.Id)
		require.NoError(tb, err)
	}
	signed, err := SignTicket(key, t)
	require.NoError(tb, err)
	return signed
}

// writeTicket signs a valid write ticket of f's node for q.
func (f *flightFixture) writeTicket(tb testing.TB, q *wire.FlightQuery) []byte {
	tb.Helper()
	return writeTicket(tb, f.key, f.name, time.Now().Add(time.Minute), q)
}

// ticket signs a valid ticket of f's node for q.
func (f *flightFixture) ticket(tb testing.TB, q *wire.FlightQuery) []byte {
	tb.Helper()
	return ticket(tb, f.key, f.name, time.Now().Add(time.Minute), q)
}

// doGet calls DoGet and returns a reader of its records, as the hub reads
// them.
func (f *flightFixture) doGet(ctx context.Context, signed []byte) (*flightcodec.Reader, error) {
	stream, err := f.client.DoGet(ctx, &flight.Ticket{Ticket: signed})
	if err != nil {
		return nil, err
	}
	return flightcodec.NewReader(stream)
}

// getRows reads every row a ticket reads, as Go values (see value).
func (f *flightFixture) getRows(tb testing.TB, signed []byte) (*arrow.Schema, [][]any, error) {
	tb.Helper()
	rdr, err := f.doGet(tb.Context(), signed)
	if err != nil {
		return nil, nil, err
	}
	defer rdr.Release()
	var rows [][]any
	for rdr.Next() {
		rec := rdr.RecordBatch()
		for i := range int(rec.NumRows()) {
			row := make([]any, rec.NumCols())
			for j, col := range rec.Columns() {
				row[j] = value(col, i)
			}
			rows = append(rows, row)
		}
	}
	return rdr.Schema(), rows, rdr.Err()
}

// everyColumns is a table with every column type the schemas use, and more.
var everyColumns = []struct{ name, typ string }{
	{"id", "UUID"}, {"dataset_id", "UUID"}, {"parent_id", "Nullable(UUID)"},
	{"name", "String"}, {"note", "Nullable(String)"},
	{"flag", "UInt8"}, {"maybe", "Nullable(UInt8)"},
	{"n", "UInt32"}, {"n_null", "Nullable(UInt32)"},
	{"volume", "Float64"}, {"area", "Nullable(Float64)"},
	{"created_at", "DateTime"}, {"day", "Date"}, {"tags", "Array(String)"},
	{"i8", "Int8"}, {"i16", "Int16"}, {"i32", "Int32"}, {"i64", "Int64"}, {"u16", "UInt16"}, {"u64", "UInt64"},
	{"f32", "Float32"}, {"code", "FixedString(4)"}, {"kind", "Enum8('axon' = 1, 'dendrite' = 2)"},
}

var (
	dsA = uuid.MustParse("aaaaaaaa-0000-4000-8000-000000000001")
	dsB = uuid.MustParse("bbbbbbbb-0000-4000-8000-000000000002")
)

func requireCode(tb testing.TB, want codes.Code, err error) {
	tb.Helper()
	require.Error(tb, err)
	require.Equal(tb, want, status.Code(err), "%v", err)
}

func TestFlightTicketsRefused(t *testing.T) {
	t.Parallel()
	conn := openDB(t, "flight_auth")
	createEvery(t, conn, "every", everyRows())
	beforeStart := time.Now()
	f := startFlightService(t, "lab-auth", fixedConn(conn))
	q := &wire.FlightQuery{Table: "every"}
	soon := time.Now().Add(time.Minute)
	cases := map[string][]byte{
		"forged":     ticket(t, newKey(t), f.name, soon, q),
		"expired":    ticket(t, f.key, f.name, time.Now().Add(-time.Second), q),
		"other node": ticket(t, f.key, "lab-other", soon, q),
		"bad query":  ticket(t, f.key, f.name, soon, &wire.FlightQuery{Table: "every; DROP TABLE every"}),
		"garbage":    []byte("not a ticket"),
		"empty":      nil,
		"no ID": signTicket(t, f.key, &wire.FlightTicket{Node: f.name, HolderIps: []string{"127.0.0.1"},
			ExpiresAt: timestamppb.New(soon), Id: []byte{}, Query: q}),
		"bound to no address": signTicket(t, f.key, &wire.FlightTicket{Node: f.name, ExpiresAt: timestamppb.New(soon), Query: q}),
	}
	for name, signed := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, _, err := f.getRows(t, signed)
			requireCode(t, codes.Unauthenticated, err)
		})
	}
	t.Run("bound to another address", func(t *testing.T) {
		t.Parallel()
		other := signTicket(t, f.key, &wire.FlightTicket{Node: f.name, HolderIps: []string{"192.0.2.1", "::1"},
			ExpiresAt: timestamppb.New(soon), Query: q})
		_, _, err := f.getRows(t, other)
		requireCode(t, codes.PermissionDenied, err)
		require.ErrorContains(t, err, "issued to a peer at 192.0.2.1, ::1, not 127.0.0.1:")
	})
	t.Run("issued before the server started", func(t *testing.T) {
		t.Parallel()
		// As by the same node before a restart, which forgot what was used.
		old := signTicket(t, f.key, &wire.FlightTicket{Node: f.name, HolderIps: []string{"127.0.0.1"},
			IssuedAt: timestamppb.New(beforeStart.Add(-time.Second)), ExpiresAt: timestamppb.New(soon), Query: q})
		_, _, err := f.getRows(t, old)
		requireCode(t, codes.PermissionDenied, err)
		require.ErrorContains(t, err, "before this node's Flight server started")
	})
}

// checksum sums what a synthetic table holds, so that a whole table can be
// compared without keeping it.
type checksum struct {
	Rows, SumN, IDHash, SHash, SumK uint64
	SumV                            float64
	Distinct                        uint64
}

// largeRows is the size of the tables doGetLarge reads.
const largeRows = 1_500_000

// TestFlightAddrInUse: a node whose Flight address is taken does not start
// (Run fails; New only builds); one given port 0 serves on the port it got,
// and frees it when it stops.
func TestFlightAddrInUse(t *testing.T) {
	t.Parallel()
	taken, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = taken.Close() }()
	cfg := config.Node{Name: "lab-port", KeyFile: filepath.Join(t.TempDir(), "node.key"), Discovery: config.Discovery{
		Bootstrap: []string{"/ip4/127.0.0.1/tcp/1/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE"}},
		Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, FlightAddr: taken.Addr().String(),
		ClickHouse: config.ClickHouse{Addr: "127.0.0.1:1", Database: "syndb"}}
	log := slog.New(slog.DiscardHandler)
	a, err := New(cfg, log)
	require.NoError(t, err)
	err = a.Run(t.Context())
	require.ErrorContains(t, err, "flight server: listen on "+taken.Addr().String())
	require.ErrorContains(t, err, "address already in use")

	cfg.FlightAddr = "127.0.0.1:0"
	a, err = New(cfg, log)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- a.Run(t.Context()) }()
	require.Eventually(t, func() bool { return a.LastError() != nil }, 30*time.Second, 10*time.Millisecond,
		"the agent starts and tries to register")
	addr := a.cfg.FlightAddr // written by Run before its first registration
	require.NotEqual(t, "127.0.0.1:0", addr)
	c, err := new(net.Dialer).DialContext(t.Context(), "tcp", addr)
	require.NoError(t, err, "the Flight server listens")
	_ = c.Close()
	a.Shutdown()
	require.NoError(t, <-done)
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", addr)
	require.NoError(t, err, "a stopped agent frees its Flight port")
	_ = l.Close()
}
