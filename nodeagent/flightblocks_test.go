package nodeagent

import (
	"context"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/syndb/federation/internal/arrowconv"
	"github.com/syndb/federation/internal/chnative"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/wire"
)

// nativeConfig is the test server's database db, for chnative.
func nativeConfig(tb testing.TB, db string) config.ClickHouse {
	tb.Helper()
	return config.ClickHouse{Addr: testClickHouse(tb), User: "default", Database: db}
}

// withNative makes a Flight service read native blocks from c.
func withNative(c config.ClickHouse) func(*flightService) {
	return func(s *flightService) { s.native = &c }
}

// moreColumns are types beyond everyColumns that the columnar reader
// converts, with rows of them as ClickHouse literals.
var moreColumns = []struct{ name, typ string }{
	{"id", "UInt32"}, {"at_berlin", "DateTime('Europe/Berlin')"}, {"at_null", "Nullable(DateTime)"},
	{"ints", "Array(Nullable(Int32))"}, {"ids", "Array(UUID)"}, {"nested", "Array(Array(UInt8))"},
	{"kind16", "Enum16('x' = 1000, 'y' = -2)"}, {"code_null", "Nullable(FixedString(2))"},
	{"f32_null", "Nullable(Float32)"}, {"i64_null", "Nullable(Int64)"}, {"day_null", "Nullable(Date)"},
}

// moreValues are the rows of the more table, one literal per column (nested
// arrays as text: 18.16 casts an empty array literal to no deeper array).
var moreValues = [][]string{
	{"1", "'2024-05-01 12:00:00'", "NULL", "[1, NULL, -3]", "['aaaaaaaa-0000-4000-8000-000000000001']", "'[[1, 2], [], [3]]'",
		"'x'", "'ab'", "0.5", "-9", "'2024-02-29'"},
	{"2", "'1970-01-02 00:00:00'", "'2001-09-09 01:46:40'", "[]", "[]", "'[]'", "'y'", "NULL", "NULL", "NULL", "NULL"},
	{"3", "'2038-01-19 03:14:07'", "'2024-01-01 00:00:00'", "[NULL]",
		"['bbbbbbbb-0000-4000-8000-000000000002', 'aaaaaaaa-0000-4000-8000-000000000001']", "'[[]]'",
		"'x'", "'zz'", "-1e30", "9223372036854775807", "'1970-01-01'"},
}

// moreInsert is an INSERT of moreValues: 18.16 takes no VALUES in an
// INSERT sent as a query, so each row is a SELECT of casts.
func moreInsert() string {
	selects := make([]string, len(moreValues))
	for i, row := range moreValues {
		casts := make([]string, len(row))
		for j, v := range row {
			casts[j] = "CAST(" + v + " AS " + moreColumns[j].typ + ") AS " + moreColumns[j].name
		}
		selects[i] = "SELECT " + strings.Join(casts, ", ")
	}
	return "INSERT INTO more " + strings.Join(selects, " UNION ALL ")
}

// createMore creates the more table with moreValues.
func createMore(t *testing.T, conn driver.Conn) {
	defs := make([]string, len(moreColumns))
	for i, c := range moreColumns {
		defs[i] = c.name + " " + c.typ
	}
	require.NoError(t, conn.Exec(t.Context(), "DROP TABLE IF EXISTS more"))
	require.NoError(t, conn.Exec(t.Context(), "CREATE TABLE more ("+strings.Join(defs, ", ")+") ENGINE = MergeTree() ORDER BY id"))
	require.NoError(t, conn.Exec(t.Context(), moreInsert()))
}

// readAll reads every batch of rdr into one record per column.
func readAll(tb testing.TB, rdr array.RecordReader, maxRows int64) ([]arrow.Array, int64) {
	tb.Helper()
	var parts [][]arrow.Array
	var rows int64
	for rdr.Next() {
		rec := rdr.RecordBatch()
		require.LessOrEqual(tb, rec.NumRows(), maxRows)
		rows += rec.NumRows()
		for i, col := range rec.Columns() {
			if i == len(parts) {
				parts = append(parts, nil)
			}
			col.Retain()
			parts[i] = append(parts[i], col)
		}
	}
	require.NoError(tb, rdr.Err())
	cols := make([]arrow.Array, len(parts))
	for i, p := range parts {
		var err error
		cols[i], err = array.Concatenate(p, memory.DefaultAllocator)
		require.NoError(tb, err)
		for _, a := range p {
			a.Release()
		}
	}
	return cols, rows
}

// TestBlockReaderMatchesReader: the columnar reader and the row reader
// give equal Arrow records for the same query, over tables of every type
// the schemas use and more, in one block and in many split into batches.
func TestBlockReaderMatchesReader(t *testing.T) {
	t.Parallel()
	const db = "flight_blocks_eq"
	conn := openDB(t, db)
	createEvery(t, conn, "every", everyRows())
	createMore(t, conn)
	createSynthetic(t, conn, "synth", 300_000)

	cols := func(cs []struct{ name, typ string }) (names, types []string) {
		for _, c := range cs {
			names, types = append(names, c.name), append(types, c.typ)
		}
		return names, types
	}
	everyNames, everyTypes := cols(everyColumns)
	moreNames, moreTypes := cols(moreColumns)
	synthNames, synthTypes := []string{"id", "n", "v", "k", "s"}, []string{"UUID", "UInt64", "Float64", "UInt32", "String"}
	cases := []struct {
		name, table, order string
		names, types       []string
		batchRows          int
		maxBytes           int
		rows               int64
	}{
		{"every type the schemas use", "every", "id", everyNames, everyTypes, 0, arrowconv.DefaultBatchBytes, 4},
		{"more types", "more", "id", moreNames, moreTypes, 0, arrowconv.DefaultBatchBytes, 3},
		{"many blocks", "synth", "n", synthNames, synthTypes, 0, arrowconv.DefaultBatchBytes, 300_000},
		{"row bound", "synth", "n", synthNames, synthTypes, 7_000, arrowconv.DefaultBatchBytes, 300_000},
		{"byte bound", "synth", "n", synthNames, synthTypes, 0, 200 << 10, 300_000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			require.True(t, arrowconv.Columnar(c.types))
			quoted := make([]string, len(c.names))
			for i, n := range c.names {
				quoted[i] = quote(n)
			}
			sql := "SELECT " + strings.Join(quoted, ", ") + " FROM " + c.table + " ORDER BY " + c.order
			maxRows := int64(c.batchRows)
			if maxRows == 0 {
				maxRows = arrowconv.DefaultBatchRows
			}

			rows, err := conn.Query(t.Context(), sql)
			require.NoError(t, err)
			old, err := arrowconv.NewReader(rows, c.names, c.types, c.batchRows, nil)
			require.NoError(t, err)
			old.SetMaxBatchBytes(c.maxBytes)
			want, wantRows := readAll(t, old, maxRows)
			old.Release()

			blocks, err := chnative.Query(t.Context(), nativeConfig(t, db), sql)
			require.NoError(t, err)
			rdr, err := arrowconv.NewBlockReader(blocks, c.names, c.types, c.batchRows, nil)
			require.NoError(t, err)
			rdr.SetMaxBatchBytes(c.maxBytes)
			require.True(t, rdr.Schema().Equal(old.Schema()), "schema %s, want %s", rdr.Schema(), old.Schema())
			got, gotRows := readAll(t, rdr, maxRows)
			rdr.Release()

			require.Equal(t, c.rows, wantRows)
			require.Equal(t, wantRows, gotRows)
			require.Equal(t, rdr.Rows(), gotRows)
			for i := range want {
				require.True(t, array.Equal(want[i], got[i]), "column %s:\n got %v\nwant %v", c.names[i], got[i], want[i])
				want[i].Release()
				got[i].Release()
			}
		})
	}
	t.Run("every table against its inserted rows", func(t *testing.T) {
		t.Parallel()
		f := startFlightService(t, "lab-blocks", fixedConn(conn), withNative(nativeConfig(t, db)))
		_, got, err := f.getRows(t, f.ticket(t, &wire.FlightQuery{Table: "every"}))
		require.NoError(t, err)
		require.Equal(t, expectedRows(everyRows()), got)
	})
}

// TestFlightDoGetColumnar: DoGet over native blocks streams what ClickHouse
// holds, within the batch and memory bounds, and stops the query of a
// client that goes away.
func TestFlightDoGetColumnar(t *testing.T) {
	t.Parallel()
	const db = "flight_large_blocks"
	conn := openDB(t, db)
	createSynthetic(t, conn, "big_blocks", largeRows)
	doGetLarge(t, conn, startFlightService(t, "lab-large-blocks", fixedConn(conn), withNative(nativeConfig(t, db))), "big_blocks")
}

// TestChnativeErrors: what the server refuses comes back as its exception,
// a cancelled context as the context's error, and DoGet maps them.
func TestChnativeErrors(t *testing.T) {
	t.Parallel()
	const db = "flight_blocks_err"
	conn := openDB(t, db)
	cfg := nativeConfig(t, db)
	read := func(ctx context.Context, cfg config.ClickHouse, sql string) error {
		rows, err := chnative.Query(ctx, cfg, sql)
		if err != nil {
			return err
		}
		defer func() { _ = rows.Close() }()
		for rows.Next(nil) > 0 {
		}
		return rows.Err()
	}
	cases := []struct {
		name string
		cfg  config.ClickHouse
		sql  string
		code int
	}{
		{"unknown table", cfg, "SELECT 1 FROM nowhere", 60},
		{"syntax", cfg, "SELEC 1", 62},
		{"wrong password", config.ClickHouse{Addr: cfg.Addr, User: "default", Password: "wrong", Database: db}, "SELECT 1", 193},
		{"unknown database", config.ClickHouse{Addr: cfg.Addr, User: "default", Database: "nodb"}, "SELECT 1", 81},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var ex *chnative.Exception
			err := read(t.Context(), c.cfg, c.sql)
			require.ErrorAs(t, err, &ex)
			require.Equal(t, c.code, ex.Code, "%v", err)
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		rows, err := chnative.Query(ctx, cfg, "SELECT number FROM system.numbers")
		require.NoError(t, err)
		defer func() { _ = rows.Close() }()
		cancel()
		for rows.Next(nil) > 0 {
		}
		require.ErrorIs(t, rows.Err(), context.Canceled)
	})
	t.Run("DoGet when the native port refuses is Unavailable", func(t *testing.T) {
		t.Parallel()
		f := startFlightService(t, "lab-blocks-down", fixedConn(conn),
			withNative(config.ClickHouse{Addr: "127.0.0.1:1", User: "default", Database: db}))
		createEvery(t, conn, "every_down", nil)
		_, _, err := f.getRows(t, f.ticket(t, &wire.FlightQuery{Table: "every_down"}))
		requireCode(t, codes.Unavailable, err)
	})
	t.Run("DoGet of a table the native database lacks is NotFound", func(t *testing.T) {
		t.Parallel()
		f := startFlightService(t, "lab-blocks-err", func(context.Context) (driver.Conn, error) { return conn, nil },
			withNative(config.ClickHouse{Addr: cfg.Addr, User: "default", Database: "nodb"}))
		createEvery(t, conn, "every", nil)
		_, _, err := f.getRows(t, f.ticket(t, &wire.FlightQuery{Table: "every"}))
		requireCode(t, codes.NotFound, err)
	})
}
