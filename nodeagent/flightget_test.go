package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/go-faster/city"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/syndb/federation/internal/arrowconv"
	"github.com/syndb/federation/internal/wire"
)

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

func TestFlightDoGetLarge(t *testing.T) {
	t.Parallel()
	conn := openDB(t, "flight_large")
	createSynthetic(t, conn, "big", largeRows)
	doGetLarge(t, conn, startFlightService(t, "lab-large", fixedConn(conn)), "big")
}

// doGetLarge reads table, of largeRows synthetic rows, over f and checks it
// against ClickHouse's own sums, the batch and memory bounds, and that a
// client that goes away stops the query.
func doGetLarge(t *testing.T, conn driver.Conn, f *flightFixture, table string) {
	const rows = largeRows

	var want checksum
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(), sum(n), sum(cityHash64(toString(id))), sum(cityHash64(s)),
		sum(k), sum(v), uniqExact(id) FROM `+table).Scan(&want.Rows, &want.SumN, &want.IDHash, &want.SHash, &want.SumK, &want.SumV, &want.Distinct))
	require.Equal(t, uint64(rows), want.Distinct)

	rdr, err := f.doGet(t.Context(), f.ticket(t, &wire.FlightQuery{Table: table}))
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
		got.Rows, batches, biggest, float64(rdr.Bytes())/1e6, float64(peak)/1e6)
	require.Less(t, peak, int64(32<<20), "memory bounded by a batch, not the result")
	require.Greater(t, rdr.Bytes(), 4*peak)

	t.Run("client cancel stops the query", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		rdr, err := f.doGet(ctx, f.ticket(t, &wire.FlightQuery{Table: table}))
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
