package nodeagent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/syndb/federation/internal/arrowconv"
	"github.com/syndb/federation/internal/wire"
)

// putResult is the app metadata of DoPut's PutResult.
type putResult struct {
	Rows    int64 `json:"rows"`
	Batches int   `json:"batches"`
}

// DoPut loads Arrow records into a table of the node. The first message's
// descriptor carries, in Cmd, a ticket this node signed: its query names
// the table (and Path[0], when set, must name it too), its columns are the
// ones the records may fill (any when it lists none), its dataset IDs the
// only datasets the rows may belong to, and its limit the most rows the
// stream may load. The ticket is checked (and used up) before any data is
// read. Each record is one INSERT with an explicit column list, checked
// before it is inserted: a record that would take the stream past the
// ticket's rows is refused whole, and the stream ends with the records
// before it loaded. The single PutResult reports {"rows": N, "batches": B}
// as app metadata.
func (s *flightService) DoPut(stream flight.FlightService_DoPutServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return status.Error(codes.InvalidArgument, "empty DoPut stream")
		}
		return sendStatus(ctx, err)
	}
	desc := first.GetFlightDescriptor()
	if len(desc.GetCmd()) == 0 {
		return status.Error(codes.Unauthenticated, "DoPut needs a signed ticket in the first message's descriptor (Cmd)")
	}
	t, err := s.verify(ctx, "DoPut", desc.GetCmd())
	if err != nil {
		return err
	}
	q := t.GetQuery()
	if p := desc.GetPath(); len(p) > 0 && p[0] != q.GetTable() {
		return status.Errorf(codes.PermissionDenied, "the ticket is for table %s, not %s", q.GetTable(), p[0])
	}
	conn, cols, err := s.table(ctx, q.GetTable())
	if err != nil {
		return err
	}
	rdr, err := flight.NewRecordReader(&replay{first: first, rest: stream}, ipc.WithAllocator(s.mem))
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "read the records' schema: %v", err)
	}
	defer rdr.Release()
	schema := rdr.Schema()
	if err := allowedColumns(q, schema); err != nil {
		return err
	}
	datasets, dsCol, err := datasetGuard(q, schema)
	if err != nil {
		return err
	}
	in, err := inserter(q.GetTable(), cols, schema)
	if err != nil {
		return err
	}
	start := time.Now()
	var res putResult
	for rdr.Next() {
		rec := rdr.RecordBatch()
		if uint64(res.Rows)+uint64(rec.NumRows()) > q.GetLimit() {
			return status.Errorf(codes.PermissionDenied, "the ticket allows at most %d rows: a batch of %d after %d loaded is refused",
				q.GetLimit(), rec.NumRows(), res.Rows)
		}
		if datasets != nil {
			if err := checkDatasets(rec.Column(dsCol), datasets); err != nil {
				return status.Errorf(codes.PermissionDenied, "%v; %d rows loaded", err, res.Rows)
			}
		}
		n, err := in.Insert(ctx, conn, rec)
		if err != nil {
			if errors.Is(err, arrowconv.ErrSchema) {
				return status.Errorf(codes.InvalidArgument, "%v; %d rows loaded", err, res.Rows)
			}
			return chStatus(err, "%d rows loaded, then", res.Rows)
		}
		res.Rows += int64(n)
		res.Batches++
	}
	if err := rdr.Err(); err != nil {
		if ctx.Err() != nil {
			return sendStatus(ctx, err)
		}
		return status.Errorf(codes.InvalidArgument, "read records: %v; %d rows loaded", err, res.Rows)
	}
	meta, err := json.Marshal(res)
	if err != nil {
		return status.Errorf(codes.Internal, "encode result: %v", err)
	}
	if err := stream.Send(&flight.PutResult{AppMetadata: meta}); err != nil {
		return sendStatus(ctx, err)
	}
	s.log.Info("flight DoPut loaded", "table", q.GetTable(), "columns", schema.NumFields(), "rows", res.Rows,
		"batches", res.Batches, "took", time.Since(start), "holder", t.GetHolder(), "transport", transport(ctx))
	return nil
}

// allowedColumns refuses a load that writes a column the ticket does not
// name (a ticket without columns allows every column of its table).
func allowedColumns(q *wire.FlightQuery, schema *arrow.Schema) error {
	allowed := q.GetColumns()
	if len(allowed) == 0 {
		return nil
	}
	for _, f := range schema.Fields() {
		if !slices.Contains(allowed, f.Name) {
			return status.Errorf(codes.PermissionDenied, "the ticket does not allow writing column %s of %s", f.Name, q.GetTable())
		}
	}
	return nil
}

// inserter inserts records of schema into table's columns, or says, as a
// gRPC status, why it cannot.
func inserter(table string, cols []column, schema *arrow.Schema) (*arrowconv.Inserter, error) {
	names, types := make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		names[i], types[i] = c.name, c.typ
	}
	in, err := arrowconv.NewInserter(table, names, types, schema)
	if err != nil {
		if errors.Is(err, arrowconv.ErrUnsupportedType) {
			return nil, status.Errorf(codes.Unimplemented, "%v", err)
		}
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	return in, nil
}

// replay hands the first message back before reading on.
type replay struct {
	first *flight.FlightData
	rest  flight.DataStreamReader
}

func (r *replay) Recv() (*flight.FlightData, error) {
	if f := r.first; f != nil {
		r.first = nil
		return f, nil
	}
	return r.rest.Recv()
}

// datasetGuard returns the datasets a ticket restricts a load to (nil: no
// restriction) and the index of the records' dataset_id field.
func datasetGuard(q *wire.FlightQuery, schema *arrow.Schema) (map[uuid.UUID]bool, int, error) {
	if len(q.GetDatasetIds()) == 0 {
		return nil, -1, nil
	}
	idx := schema.FieldIndices("dataset_id")
	if len(idx) != 1 || !arrow.TypeEqual(schema.Field(idx[0]).Type, extensions.NewUUIDType()) {
		return nil, -1, status.Errorf(codes.PermissionDenied,
			"the ticket is limited to %d datasets: the records need one dataset_id column of arrow.uuid", len(q.GetDatasetIds()))
	}
	ids := make(map[uuid.UUID]bool, len(q.GetDatasetIds()))
	for _, s := range q.GetDatasetIds() {
		ids[uuid.MustParse(s)] = true // validated with the ticket
	}
	return ids, idx[0], nil
}

// checkDatasets fails unless every value of col is one of ids.
func checkDatasets(col arrow.Array, ids map[uuid.UUID]bool) error {
	a, ok := col.(*extensions.UUIDArray)
	if !ok {
		return fmt.Errorf("dataset_id is %s, not arrow.uuid", col.DataType())
	}
	for i := range a.Len() {
		if a.IsNull(i) {
			return errors.New("a row has no dataset_id")
		}
		if v := a.Value(i); !ids[v] {
			return fmt.Errorf("dataset %s is not one the ticket allows", v)
		}
	}
	return nil
}
