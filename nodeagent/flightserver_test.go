package nodeagent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/go-faster/city"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/syndb/federation/internal/arrowconv"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
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
		grpc.WithTransportCredentials(insecure.NewCredentials()))
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

// countingStream counts the Arrow IPC bytes a DoGet carries.
type countingStream struct {
	flight.FlightService_DoGetClient
	bytes int64
}

func (c *countingStream) Recv() (*flight.FlightData, error) {
	fd, err := c.FlightService_DoGetClient.Recv()
	if fd != nil {
		c.bytes += int64(len(fd.DataHeader) + len(fd.DataBody))
	}
	return fd, err
}

// doGet calls DoGet and returns a reader of its records.
func (f *flightFixture) doGet(ctx context.Context, signed []byte) (*flight.Reader, *countingStream, error) {
	stream, err := f.client.DoGet(ctx, &flight.Ticket{Ticket: signed})
	if err != nil {
		return nil, nil, err
	}
	cs := &countingStream{FlightService_DoGetClient: stream}
	rdr, err := flight.NewRecordReader(cs)
	if err != nil {
		return nil, nil, err
	}
	return rdr, cs, nil
}

// getRows reads every row a ticket reads, as Go values (see value).
func (f *flightFixture) getRows(tb testing.TB, signed []byte) (*arrow.Schema, [][]any, error) {
	tb.Helper()
	rdr, _, err := f.doGet(tb.Context(), signed)
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

// value is a's i-th value as a comparable Go value: nil for NULL, []any
// for a list.
func value(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *extensions.UUIDArray:
		return a.Value(i)
	case *array.String:
		return strings.Clone(a.Value(i))
	case *array.FixedSizeBinary:
		return string(a.Value(i))
	case *array.Int8:
		return a.Value(i)
	case *array.Int16:
		return a.Value(i)
	case *array.Int32:
		return a.Value(i)
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return a.Value(i)
	case *array.Uint16:
		return a.Value(i)
	case *array.Uint32:
		return a.Value(i)
	case *array.Uint64:
		return a.Value(i)
	case *array.Float32:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Timestamp:
		return time.Unix(int64(a.Value(i)), 0).UTC()
	case *array.Date32:
		return a.Value(i).ToTime().UTC()
	case *array.List:
		start, end := a.ValueOffsets(i)
		out := []any{}
		for j := start; j < end; j++ {
			out = append(out, value(a.ListValues(), int(j)))
		}
		return out
	}
	panic(fmt.Sprintf("no test value for %s", a.DataType()))
}

// expected is an inserted value as value reads it back.
func expected(v any) any {
	switch x := v.(type) {
	case *uuid.UUID:
		if x == nil {
			return nil
		}
		return *x
	case *string:
		if x == nil {
			return nil
		}
		return *x
	case *uint8:
		if x == nil {
			return nil
		}
		return *x
	case *uint32:
		if x == nil {
			return nil
		}
		return *x
	case *float64:
		if x == nil {
			return nil
		}
		return *x
	case []string:
		out := []any{}
		for _, s := range x {
			out = append(out, s)
		}
		return out
	case time.Time:
		return x.UTC()
	}
	return v
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

func ptr[T any](v T) *T { return &v }

// everyRows are the rows of the every table, ordered by id.
func everyRows() [][]any {
	at := time.Date(2024, 5, 1, 12, 30, 5, 0, time.UTC)
	day := time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)
	row := func(id int, ds uuid.UUID, parent *uuid.UUID, name string, note *string, flag uint8, maybe *uint8, n uint32,
		nNull *uint32, vol float64, area *float64, tags []string, kind string) []any {
		return []any{uuid.MustParse(fmt.Sprintf("00000000-0000-4000-8000-%012d", id)), ds, parent, name, note, flag, maybe,
			n, nNull, vol, area, at.Add(time.Duration(id) * time.Hour), day.AddDate(0, 0, id), tags,
			int8(-id), int16(-300 * id), int32(-70000 * id), int64(-1) << (40 + id), uint16(60000 + id), uint64(1)<<63 + uint64(id),
			float32(id) + 0.25, fmt.Sprintf("c%03d", id), kind}
	}
	return [][]any{
		row(1, dsA, nil, "neuron one", ptr("first"), 1, ptr(uint8(0)), 10, nil, 1.5, ptr(2.25), []string{"a", "b"}, "axon"),
		row(2, dsA, ptr(dsA), "", nil, 0, nil, 4294967295, ptr(uint32(7)), -0.5, nil, []string{}, "dendrite"),
		row(3, dsB, nil, "ünïcode ✓", ptr(""), 1, ptr(uint8(255)), 0, ptr(uint32(0)), 1e300, ptr(-1e-300), []string{"x"}, "axon"),
		row(4, dsB, ptr(dsB), "last", ptr("with 'quotes'"), 0, nil, 3, nil, 0, nil, []string{"", "y", "z"}, "dendrite"),
	}
}

// createEvery creates table name with everyColumns and inserts rows with
// PrepareBatch and an explicit column list.
func createEvery(tb testing.TB, conn driver.Conn, name string, rows [][]any) {
	tb.Helper()
	ctx := tb.Context()
	defs := make([]string, len(everyColumns))
	names := make([]string, len(everyColumns))
	for i, c := range everyColumns {
		defs[i], names[i] = c.name+" "+c.typ, c.name
	}
	require.NoError(tb, conn.Exec(ctx, "DROP TABLE IF EXISTS "+name))
	require.NoError(tb, conn.Exec(ctx, "CREATE TABLE "+name+" ("+strings.Join(defs, ", ")+") ENGINE = MergeTree() ORDER BY id"))
	if len(rows) == 0 {
		return
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+name+" ("+strings.Join(names, ", ")+")")
	require.NoError(tb, err)
	for _, r := range rows {
		require.NoError(tb, batch.Append(r...))
	}
	require.NoError(tb, batch.Send())
}

func expectedRows(rows [][]any) [][]any {
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = make([]any, len(r))
		for j, v := range r {
			out[i][j] = expected(v)
		}
	}
	return out
}

func requireCode(tb testing.TB, want codes.Code, err error) {
	tb.Helper()
	require.Error(tb, err)
	require.Equal(tb, want, status.Code(err), "%v", err)
}

func TestFlightDoGet(t *testing.T) {
	t.Parallel()
	t.Run("rows scanned", func(t *testing.T) {
		t.Parallel()
		testDoGet(t, openDB(t, "flight_get"))
	})
	t.Run("native blocks", func(t *testing.T) {
		t.Parallel()
		testDoGet(t, openDB(t, "flight_get_blocks"), withNative(nativeConfig(t, "flight_get_blocks")))
	})
}

// testDoGet checks DoGet of a table of every type in conn's database,
// over a service changed by opts.
func testDoGet(t *testing.T, conn driver.Conn, opts ...func(*flightService)) {
	rows := everyRows()
	createEvery(t, conn, "every", rows)
	f := startFlightService(t, "lab-get", fixedConn(conn), opts...)
	t.Cleanup(func() {
		require.Eventually(t, func() bool { return f.mem.cur.Load() == 0 }, 10*time.Second, 10*time.Millisecond,
			"DoGet leaked %d bytes of Arrow memory", f.mem.cur.Load())
	})

	schema, got, err := f.getRows(t, f.ticket(t, &wire.FlightQuery{Table: "every"}))
	require.NoError(t, err)
	require.Equal(t, expectedRows(rows), got)
	require.Equal(t, len(everyColumns), schema.NumFields())
	for i, c := range everyColumns {
		fld := schema.Field(i)
		require.Equal(t, c.name, fld.Name)
		require.Equal(t, strings.HasPrefix(c.typ, "Nullable("), fld.Nullable, c.name)
		typ, _ := fld.Metadata.GetValue(arrowconv.MetadataType)
		require.Equal(t, c.typ, typ)
	}
	require.Equal(t, "arrow.uuid", schema.Field(0).Type.(arrow.ExtensionType).ExtensionName())

	t.Run("columns, datasets and limit", func(t *testing.T) {
		t.Parallel()
		_, got, err := f.getRows(t, f.ticket(t, &wire.FlightQuery{Table: "every", Columns: []string{"name", "tags"},
			DatasetIds: []string{dsB.String()}}))
		require.NoError(t, err)
		require.Equal(t, [][]any{{"ünïcode ✓", []any{"x"}}, {"last", []any{"", "y", "z"}}}, got)

		_, got, err = f.getRows(t, f.ticket(t, &wire.FlightQuery{Table: "every", Columns: []string{"n"}, Limit: 3}))
		require.NoError(t, err)
		require.Len(t, got, 3)
	})
	t.Run("empty result carries the schema", func(t *testing.T) {
		t.Parallel()
		schema, got, err := f.getRows(t, f.ticket(t, &wire.FlightQuery{Table: "every", Columns: []string{"id", "note"},
			DatasetIds: []string{uuid.NewString()}}))
		require.NoError(t, err)
		require.Empty(t, got)
		require.Equal(t, []string{"id", "note"}, []string{schema.Field(0).Name, schema.Field(1).Name})
	})
	t.Run("missing table or column", func(t *testing.T) {
		t.Parallel()
		_, _, err := f.getRows(t, f.ticket(t, &wire.FlightQuery{Table: "nope"}))
		requireCode(t, codes.NotFound, err)
		_, _, err = f.getRows(t, f.ticket(t, &wire.FlightQuery{Table: "every", Columns: []string{"id", "nope"}}))
		requireCode(t, codes.NotFound, err)
	})
	t.Run("clickhouse down", func(t *testing.T) {
		t.Parallel()
		down := startFlightService(t, "lab-down", func(context.Context) (driver.Conn, error) {
			return nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
		}, opts...)
		_, _, err := down.getRows(t, down.ticket(t, &wire.FlightQuery{Table: "every"}))
		requireCode(t, codes.Unavailable, err)
	})
}

func TestFlightTicketsRefused(t *testing.T) {
	t.Parallel()
	conn := openDB(t, "flight_auth")
	createEvery(t, conn, "every", everyRows())
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
			IssuedAt: timestamppb.New(time.Now().Add(-10 * time.Second)), ExpiresAt: timestamppb.New(soon), Query: q})
		_, _, err := f.getRows(t, old)
		requireCode(t, codes.PermissionDenied, err)
		require.ErrorContains(t, err, "before this node's Flight server started")
	})
}

// put loads recs over DoPut with a descriptor carrying cmd and path.
func (f *flightFixture) put(tb testing.TB, cmd []byte, path []string, recs ...arrow.RecordBatch) (putResult, error) {
	tb.Helper()
	var res putResult
	stream, err := f.client.DoPut(tb.Context())
	if err != nil {
		return res, err
	}
	w := flight.NewRecordWriter(stream, ipc.WithSchema(recs[0].Schema()))
	if cmd != nil || path != nil {
		w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd, Path: path})
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			break // the server ended the stream: its status follows
		}
	}
	_ = w.Close()
	_ = stream.CloseSend()
	pr, err := stream.Recv()
	if err != nil {
		return res, err
	}
	require.NoError(tb, json.Unmarshal(pr.GetAppMetadata(), &res))
	_, err = stream.Recv()
	require.ErrorIs(tb, err, io.EOF)
	return res, nil
}

func count(tb testing.TB, conn driver.Conn, table string) uint64 {
	tb.Helper()
	var n uint64
	require.NoError(tb, conn.QueryRow(tb.Context(), "SELECT count() FROM "+table).Scan(&n))
	return n
}

// getRecords reads every record a ticket reads, retained: the caller
// releases them.
func (f *flightFixture) getRecords(tb testing.TB, signed []byte) []arrow.RecordBatch {
	tb.Helper()
	rdr, _, err := f.doGet(tb.Context(), signed)
	require.NoError(tb, err)
	defer rdr.Release()
	var recs []arrow.RecordBatch
	for rdr.Next() {
		rec := rdr.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	require.NoError(tb, rdr.Err())
	return recs
}

func TestFlightDoPut(t *testing.T) {
	t.Parallel()
	conn := openDB(t, "flight_put")
	rows := everyRows()
	createEvery(t, conn, "every", rows)
	f := startFlightService(t, "lab-put", fixedConn(conn))

	// The records DoGet reads from every load into a copy of it: every
	// column type, both ways.
	recs := f.getRecords(t, f.ticket(t, &wire.FlightQuery{Table: "every"}))
	t.Cleanup(func() {
		for _, r := range recs {
			r.Release()
		}
	})
	require.NotEmpty(t, recs)

	t.Run("loads", func(t *testing.T) {
		t.Parallel()
		createEvery(t, conn, "loaded", nil)
		res, err := f.put(t, f.writeTicket(t, &wire.FlightQuery{Table: "loaded", Limit: 8}), []string{"loaded"}, append(recs, recs...)...)
		require.NoError(t, err)
		require.Equal(t, putResult{Rows: 8, Batches: 2 * len(recs)}, res)
		_, got, err := f.getRows(t, f.ticket(t, &wire.FlightQuery{Table: "loaded"}))
		require.NoError(t, err)
		want := expectedRows(rows)
		require.ElementsMatch(t, append(want, want...), got, "each row twice (two inserts: in no set order)")
	})
	t.Run("subset of columns, lists of nullable elements", func(t *testing.T) {
		t.Parallel()
		createEvery(t, conn, "partial", nil)
		schema := arrow.NewSchema([]arrow.Field{
			{Name: "id", Type: extensions.NewUUIDType()},
			{Name: "dataset_id", Type: extensions.NewUUIDType()},
			{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
			{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String)},
		}, nil)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		id := uuid.New()
		b.Field(0).(*extensions.UUIDBuilder).Append(id)
		b.Field(1).(*extensions.UUIDBuilder).Append(dsA)
		b.Field(2).(*array.StringBuilder).AppendNull()
		lb := b.Field(3).(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.StringBuilder).Append("t")
		rec := b.NewRecordBatch()
		defer rec.Release()
		tkt := f.writeTicket(t, &wire.FlightQuery{Table: "partial", Columns: []string{"id", "dataset_id", "note", "tags"},
			DatasetIds: []string{dsA.String()}, Limit: 1})
		res, err := f.put(t, tkt, nil, rec)
		require.NoError(t, err)
		require.Equal(t, int64(1), res.Rows)
		_, got, err := f.getRows(t, f.ticket(t, &wire.FlightQuery{Table: "partial", Columns: []string{"id", "note", "tags", "n", "name"}}))
		require.NoError(t, err)
		require.Equal(t, [][]any{{id, nil, []any{"t"}, uint32(0), ""}}, got, "missing columns take their defaults")
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		createEvery(t, conn, "guarded", nil)
		q := &wire.FlightQuery{Table: "guarded", Limit: 100}
		soon := time.Now().Add(time.Minute)
		for _, c := range []struct {
			name string
			cmd  []byte
			path []string
			want codes.Code
		}{
			{"no descriptor", nil, nil, codes.Unauthenticated},
			{"path without ticket", nil, []string{"guarded"}, codes.Unauthenticated},
			{"forged", writeTicket(t, newKey(t), f.name, soon, q), nil, codes.Unauthenticated},
			{"expired", writeTicket(t, f.key, f.name, time.Now().Add(-time.Second), q), nil, codes.Unauthenticated},
			{"other node", writeTicket(t, f.key, "lab-other", soon, q), nil, codes.Unauthenticated},
			{"read ticket", f.ticket(t, q), nil, codes.Unauthenticated},
			{"no row count", f.writeTicket(t, &wire.FlightQuery{Table: "guarded"}), nil, codes.Unauthenticated},
			{"ticket for another table", f.writeTicket(t, &wire.FlightQuery{Table: "every", Limit: 100}), []string{"guarded"}, codes.PermissionDenied},
			{"column not allowed", f.writeTicket(t, &wire.FlightQuery{Table: "guarded", Columns: []string{"id", "name"}, Limit: 100}), nil, codes.PermissionDenied},
			{"other dataset", f.writeTicket(t, &wire.FlightQuery{Table: "guarded", DatasetIds: []string{dsA.String()}, Limit: 100}), nil, codes.PermissionDenied},
			{"too many rows", f.writeTicket(t, &wire.FlightQuery{Table: "guarded", Limit: 1}), nil, codes.PermissionDenied},
			{"missing table", f.writeTicket(t, &wire.FlightQuery{Table: "nope", Limit: 100}), nil, codes.NotFound},
		} {
			_, err := f.put(t, c.cmd, c.path, recs...)
			requireCode(t, c.want, err)
			require.Zero(t, count(t, conn, "guarded"), "%s: nothing may load", c.name)
		}

		// Records that do not fit the table.
		schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		b.Field(0).(*array.Int64Builder).Append(1)
		rec := b.NewRecordBatch()
		defer rec.Release()
		_, err := f.put(t, f.writeTicket(t, q), nil, rec)
		requireCode(t, codes.InvalidArgument, err)
		require.ErrorContains(t, err, "column n is int64 in the records, but ClickHouse UInt32 takes uint32")
		require.Zero(t, count(t, conn, "guarded"))
	})
}

// createSynthetic creates table name with n generated rows, unless it has
// them already.
func createSynthetic(tb testing.TB, conn driver.Conn, name string, n uint64) {
	tb.Helper()
	ctx := tb.Context()
	var have uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+name).Scan(&have); err == nil && have == n {
		return
	}
	require.NoError(tb, conn.Exec(ctx, "DROP TABLE IF EXISTS "+name))
	require.NoError(tb, conn.Exec(ctx, "CREATE TABLE "+name+
		" (id UUID, n UInt64, v Float64, k UInt32, s String) ENGINE = MergeTree() ORDER BY n"))
	require.NoError(tb, conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (id, n, v, k, s) SELECT generateUUIDv4(), number, "+
		"number * 0.5, number %% 1000, concat('neuron-', toString(number)) FROM system.numbers LIMIT %d", name, n)))
}

// checksum sums what a synthetic table holds, so that a whole table can be
// compared without keeping it.
type checksum struct {
	Rows, SumN, IDHash, SHash, SumK uint64
	SumV                            float64
	Distinct                        uint64
}

func TestFlightDoGetLarge(t *testing.T) {
	t.Parallel()
	conn := openDB(t, "flight_large")
	createSynthetic(t, conn, "big", largeRows)
	doGetLarge(t, conn, startFlightService(t, "lab-large", fixedConn(conn)), "big")
}

// largeRows is the size of the tables doGetLarge reads.
const largeRows = 1_500_000

// doGetLarge reads table, of largeRows synthetic rows, over f and checks it
// against ClickHouse's own sums, the batch and memory bounds, and that a
// client that goes away stops the query.
func doGetLarge(t *testing.T, conn driver.Conn, f *flightFixture, table string) {
	const rows = largeRows

	var want checksum
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(), sum(n), sum(cityHash64(toString(id))), sum(cityHash64(s)),
		sum(k), sum(v), uniqExact(id) FROM `+table).Scan(&want.Rows, &want.SumN, &want.IDHash, &want.SHash, &want.SumK, &want.SumV, &want.Distinct))
	require.Equal(t, uint64(rows), want.Distinct)

	rdr, cs, err := f.doGet(t.Context(), f.ticket(t, &wire.FlightQuery{Table: table}))
	require.NoError(t, err)
	defer rdr.Release()
	var got checksum
	seen := make(map[uuid.UUID]struct{}, rows)
	batches, biggest := 0, int64(0)
	for rdr.Next() {
		rec := rdr.RecordBatch()
		batches++
		biggest = max(biggest, rec.NumRows())
		ids := rec.Column(0).(*extensions.UUIDArray)
		ns, vs := rec.Column(1).(*array.Uint64), rec.Column(2).(*array.Float64)
		ks, ss := rec.Column(3).(*array.Uint32), rec.Column(4).(*array.String)
		for i := range int(rec.NumRows()) {
			id := ids.Value(i)
			seen[id] = struct{}{}
			got.Rows++
			got.SumN += ns.Value(i)
			got.SumV += vs.Value(i)
			got.SumK += uint64(ks.Value(i))
			got.IDHash += city.CH64([]byte(id.String()))
			got.SHash += city.CH64([]byte(ss.Value(i)))
		}
	}
	require.NoError(t, rdr.Err())
	got.Distinct = uint64(len(seen))
	require.Equal(t, want, got)
	require.Greater(t, batches, 10, "the result is streamed in batches")
	require.LessOrEqual(t, biggest, int64(arrowconv.DefaultBatchRows))
	peak := f.mem.peak.Load()
	t.Logf("%d rows, %d batches (at most %d rows), %.1f MB of Arrow IPC, server's peak Arrow memory %.1f MB",
		got.Rows, batches, biggest, float64(cs.bytes)/1e6, float64(peak)/1e6)
	require.Less(t, peak, int64(32<<20), "memory bounded by a batch, not the result")
	require.Greater(t, cs.bytes, 4*peak)

	t.Run("client cancel stops the query", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		rdr, _, err := f.doGet(ctx, f.ticket(t, &wire.FlightQuery{Table: table}))
		require.NoError(t, err)
		require.True(t, rdr.Next())
		cancel()
		for rdr.Next() {
		}
		rdr.Release()
		require.Eventually(t, func() bool {
			var running uint64
			err := conn.QueryRow(t.Context(), "SELECT count() FROM system.processes WHERE query LIKE '%FROM `"+table+"`%' "+
				"AND query NOT LIKE '%system.processes%'").Scan(&running)
			return err == nil && running == 0 && f.mem.cur.Load() == 0
		}, 30*time.Second, 20*time.Millisecond, "the query must stop and its batches be freed")
	})
}

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
