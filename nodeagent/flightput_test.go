package nodeagent

import (
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/syndb/federation/internal/wire"
)

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
	rdr, err := f.doGet(tb.Context(), signed)
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
