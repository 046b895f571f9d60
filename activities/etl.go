package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/syndb/federation/internal/arrowch"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/fedpb"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/p2p"
)

// EtlTarget finds the node an ETL job loads into: registered, active and
// routable.
func (a *Jobs) EtlTarget(ctx context.Context, spec domain.EtlSpec) (domain.NodeRef, error) {
	if spec.Node == domain.HubTarget {
		if a.warehouse == nil {
			return domain.NodeRef{}, temporal.NewNonRetryableApplicationError("this worker has no hub warehouse", domain.ErrTypeInvalid, nil)
		}
		return domain.NodeRef{Name: domain.HubTarget}, nil
	}
	cs, err := a.store.Clusters(ctx, true)
	if err != nil {
		return domain.NodeRef{}, err
	}
	for _, c := range cs {
		if c.Name != spec.Node {
			continue
		}
		if st, _ := health.ParseState(c.Health); !st.Routable() {
			return domain.NodeRef{}, fmt.Errorf("node %s is %s: the load waits for it", c.Name, c.Health)
		}
		return domain.NodeRef{Name: c.Name, PeerID: c.PeerID, Addrs: c.Addrs, SchemaVersion: c.SchemaVersion}, nil
	}
	return domain.NodeRef{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("no registered node %q", spec.Node), domain.ErrTypeInvalid, nil)
}

// flightTo asks node for a ticket (GetFlightEndpoint) and connects to its
// Flight server. The ticket is good for one stream, started within its
// lifetime (a minute) over a connection from the address this host's libp2p
// connection to the node comes from: each stream asks for its own, right
// before it starts.
func (a *Jobs) flightTo(ctx context.Context, node domain.NodeRef, q *fedpb.FlightQuery, write bool) (flight.Client, []byte, error) {
	var ep fedpb.GetFlightEndpointResponse
	req := &fedpb.GetFlightEndpointRequest{Query: q, Write: write}
	if err := a.nodes.Call(ctx, node.PeerID, node.Addrs, p2p.FlightEndpoint, req, &ep); err != nil {
		return nil, nil, nodeError(node.Name, err)
	}
	addr, ok := strings.CutPrefix(ep.GetLocation(), "grpc://")
	if !ok {
		return nil, nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: unsupported Flight location %q", node.Name, ep.GetLocation()), domain.ErrTypeInvalid, nil)
	}
	c, err := flight.NewClientWithMiddleware(addr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: flight client: %w", node.Name, err)
	}
	return c, ep.GetTicket(), nil
}

// readFlight reads q from node over Flight (a read ticket from
// GetFlightEndpoint, then DoGet). done releases the reader and the client.
func (a *Jobs) readFlight(ctx context.Context, node domain.NodeRef, q *fedpb.FlightQuery) (rd *flight.Reader, done func(), err error) {
	c, ticket, err := a.flightTo(ctx, node, q, false)
	if err != nil {
		return nil, nil, err
	}
	stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: ticket})
	if err == nil {
		rd, err = flight.NewRecordReader(stream)
	}
	if err != nil {
		_ = c.Close()
		return nil, nil, fmt.Errorf("%s: read %s over Flight: %w", node.Name, q.GetTable(), err)
	}
	return rd, func() { rd.Release(); _ = c.Close() }, nil
}

// flightPut loads records of schema into node over Flight: a write
// ticket for q (q.Limit: the rows it may load) from GetFlightEndpoint, then
// DoPut. Write each record with
// write; finish ends the stream and returns the rows the node loaded;
// close releases the client (after finish, or on error).
type flightPut struct {
	node   string
	client flight.Client
	stream flight.FlightService_DoPutClient
	w      *flight.Writer
}

func (a *Jobs) putFlight(ctx context.Context, node domain.NodeRef, q *fedpb.FlightQuery, schema *arrow.Schema) (*flightPut, error) {
	c, ticket, err := a.flightTo(ctx, node, q, true)
	if err != nil {
		return nil, err
	}
	stream, err := c.DoPut(ctx)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("%s: DoPut: %w", node.Name, err)
	}
	w := flight.NewRecordWriter(stream, ipc.WithSchema(schema))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: ticket})
	return &flightPut{node: node.Name, client: c, stream: stream, w: w}, nil
}

func (f *flightPut) write(rec arrow.RecordBatch) error {
	if err := f.w.Write(rec); err != nil {
		return fmt.Errorf("%s: send batch: %w", f.node, err)
	}
	return nil
}

func (f *flightPut) finish() (int64, error) {
	_ = f.w.Close()
	_ = f.stream.CloseSend()
	res, err := f.stream.Recv()
	if err != nil {
		return 0, fmt.Errorf("%s: load: %w", f.node, err)
	}
	var put struct {
		Rows int64 `json:"rows"`
	}
	if err := json.Unmarshal(res.GetAppMetadata(), &put); err != nil {
		return 0, fmt.Errorf("%s: load answer: %w", f.node, err)
	}
	return put.Rows, nil
}

func (f *flightPut) close() { _ = f.client.Close() }

// readColumn streams one UUID column of a node's table for a dataset and
// calls fn with each value; it returns the number of rows.
func (a *Jobs) readColumn(ctx context.Context, node domain.NodeRef, table, column, dataset string, fn func(uuid.UUID)) (int64, error) {
	if node.Name == domain.HubTarget {
		return a.readHubColumn(ctx, table, column, dataset, fn)
	}
	rd, done, err := a.readFlight(ctx, node, &fedpb.FlightQuery{Table: table, Columns: []string{column}, DatasetIds: []string{dataset}})
	if err != nil {
		return 0, err
	}
	defer done()
	var n int64
	for rd.Next() {
		rec := rd.RecordBatch()
		ids, err := uuidColumn(rec.Column(0))
		if err != nil {
			return n, err
		}
		for i := range ids.Len() {
			if ids.IsValid(i) {
				fn(uuid.UUID(ids.Value(i)))
			}
		}
		n += rec.NumRows()
	}
	return n, rd.Err()
}

// ValidateStaged checks the staged file against the table, streaming it:
// column names and types, required columns, every cell, the dataset, and
// the parent relation (parent_id must be a neuron of the dataset on the
// node, or of the file when it loads neurons). It loads nothing.
func (a *Jobs) ValidateStaged(ctx context.Context, p domain.EtlParams) (domain.EtlReport, error) {
	rep := domain.EtlReport{Problems: []domain.Problem{}}
	var rows atomic.Int64
	stop := heartbeat(ctx, func() any { return map[string]any{"validated_rows": rows.Load()} })
	defer stop()
	dataset := p.Spec.Dataset.DatasetID
	neurons := map[uuid.UUID]bool{}
	if p.Spec.Table != "neuron" {
		if _, err := a.readColumn(ctx, p.Node, "neuron", "cid", dataset, func(id uuid.UUID) { neurons[id] = true }); err != nil {
			return rep, err
		}
	}
	err := a.etlRows(ctx, p.Spec, &rep, 64<<10, func(rec arrow.RecordBatch) error {
		rows.Add(rec.NumRows())
		idx := rec.Schema().FieldIndices("parent_id")
		if len(idx) == 0 {
			return nil
		}
		parents, err := uuidColumn(rec.Column(idx[0]))
		if err != nil {
			return err
		}
		base := rows.Load() - rec.NumRows()
		for i := range parents.Len() {
			if !parents.IsValid(i) {
				continue
			}
			id := uuid.UUID(parents.Value(i))
			switch {
			case p.Spec.Table == "neuron":
				rep.Add(domain.Problem{Row: base + int64(i) + 1, Column: "parent_id", Value: id.String(), Problem: "a neuron has no parent"})
			case !neurons[id]:
				rep.Add(domain.Problem{Row: base + int64(i) + 1, Column: "parent_id", Value: id.String(),
					Problem: "no neuron with this cid in dataset " + dataset + " on " + p.Node.Name})
			}
		}
		return nil
	})
	return rep, err
}

// LoadStaged streams the validated file into the node's table over its
// Flight server (DoPut with a write ticket for that table and dataset),
// batch by batch. A retry after the rows arrived loads nothing twice; a
// retry after a partial load stops and says so.
func (a *Jobs) LoadStaged(ctx context.Context, p domain.EtlParams) (domain.EtlLoaded, error) {
	started := time.Now()
	var loaded atomic.Int64
	stop := heartbeat(ctx, func() any { return map[string]any{"loaded_rows": loaded.Load()} })
	defer stop()
	have, err := a.readColumn(ctx, p.Node, p.Spec.Table, "cid", p.Spec.Dataset.DatasetID, func(uuid.UUID) {})
	if err != nil {
		return domain.EtlLoaded{}, err
	}
	switch {
	case have == p.Rows && have > 0:
		return domain.EtlLoaded{Rows: have, AlreadyLoaded: true, DurationMS: time.Since(started).Milliseconds()}, nil
	case have > 0:
		return domain.EtlLoaded{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"%s already holds %d rows of dataset %s in %s (the file has %d): remove them before loading again",
			p.Node.Name, have, p.Spec.Dataset.DatasetID, p.Spec.Table, p.Rows), domain.ErrTypeInvalid, nil)
	}
	var out domain.EtlLoaded
	if p.Node.Name == domain.HubTarget {
		h := &hubLoader{a: a, table: p.Spec.Table}
		rep := domain.EtlReport{}
		err := a.etlRows(ctx, p.Spec, &rep, 64<<10, func(rec arrow.RecordBatch) error {
			out.Batches++
			loaded.Add(rec.NumRows())
			return h.write(ctx, rec)
		})
		if err != nil {
			return out, err
		}
		if rep.ProblemCount > 0 {
			return out, temporal.NewNonRetryableApplicationError("the staged file changed since it was validated", domain.ErrTypeInvalid, nil)
		}
		out.Rows, out.DurationMS = h.rows, time.Since(started).Milliseconds()
		return out, nil
	}
	var put *flightPut
	rep := domain.EtlReport{}
	err = a.etlRows(ctx, p.Spec, &rep, 64<<10, func(rec arrow.RecordBatch) error {
		if put == nil {
			if p.Rows <= 0 {
				return temporal.NewNonRetryableApplicationError("the staged file changed since it was validated", domain.ErrTypeInvalid, nil)
			}
			cols := make([]string, 0, rec.NumCols())
			for _, f := range rec.Schema().Fields() {
				cols = append(cols, f.Name)
			}
			// The write ticket allows the rows the validation counted, and
			// the node loads no more.
			var err error
			put, err = a.putFlight(ctx, p.Node, &fedpb.FlightQuery{Table: p.Spec.Table, Columns: cols,
				DatasetIds: []string{p.Spec.Dataset.DatasetID}, Limit: uint64(p.Rows)}, rec.Schema())
			if err != nil {
				return err
			}
		}
		if err := put.write(rec); err != nil {
			return err
		}
		out.Batches++
		loaded.Add(rec.NumRows())
		return nil
	})
	if put != nil {
		defer put.close()
	}
	if err != nil {
		return out, err
	}
	if rep.ProblemCount > 0 {
		return out, temporal.NewNonRetryableApplicationError("the staged file changed since it was validated", domain.ErrTypeInvalid, nil)
	}
	if put == nil {
		return out, nil // an empty file
	}
	if out.Rows, err = put.finish(); err != nil {
		return out, err
	}
	out.DurationMS = time.Since(started).Milliseconds()
	if out.Rows != p.Rows {
		return out, fmt.Errorf("%s loaded %d rows of %d", p.Node.Name, out.Rows, p.Rows)
	}
	return out, nil
}

// RegisterDataset writes the dataset's metadata into the node's datasets
// table (once: a dataset already there is left as it is).
func (a *Jobs) RegisterDataset(ctx context.Context, p domain.EtlParams) (bool, error) {
	have, err := a.readColumn(ctx, p.Node, "datasets", "dataset_id", p.Spec.Dataset.DatasetID, func(uuid.UUID) {})
	if err != nil {
		return false, err
	}
	if have > 0 {
		return false, nil
	}
	d := p.Spec.Dataset
	cols := []string{"dataset_id", "name", "owner", "animal", "brain_region", "genetic_manipulations", "microscopy",
		"publication_doi", "notes", "created_at"}
	fields := make([]arrow.Field, len(cols))
	tcs := make([]*arrowch.TextColumn, len(cols))
	for i, c := range cols {
		tc, err := arrowch.NewTextColumn(a.types["datasets"][c])
		if err != nil {
			return false, err
		}
		tcs[i], fields[i] = tc, arrow.Field{Name: c, Type: tc.ArrowType()}
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema(fields, nil))
	defer b.Release()
	manip := d.GeneticManipulations
	if manip == nil {
		manip = []string{}
	}
	vals := []any{uuid.MustParse(d.DatasetID), d.Name, d.Owner, d.Animal, d.BrainRegion, manip, d.Microscopy,
		d.PublicationDOI, d.Notes, time.Now().UTC().Truncate(time.Second)}
	for i, v := range vals {
		tcs[i].Append(b.Field(i), v)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	if p.Node.Name == domain.HubTarget {
		if err := (&hubLoader{a: a, table: "datasets"}).write(ctx, rec); err != nil {
			return false, err
		}
		return true, nil
	}
	put, err := a.putFlight(ctx, p.Node, &fedpb.FlightQuery{Table: "datasets", Columns: cols, DatasetIds: []string{d.DatasetID}, Limit: 1}, rec.Schema())
	if err != nil {
		return false, err
	}
	defer put.close()
	if err := put.write(rec); err != nil {
		return false, err
	}
	if _, err := put.finish(); err != nil {
		return false, fmt.Errorf("register dataset: %w", err)
	}
	return true, nil
}

// DeleteStaged removes the staged object once its rows are loaded.
func (a *Jobs) DeleteStaged(ctx context.Context, p domain.EtlParams) error {
	if err := a.staging.RemoveObject(ctx, a.stagingBucket, p.Spec.Object, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("remove staged %s: %w", p.Spec.Object, err)
	}
	return nil
}

// SetCatalogRefresh sets how a finished load refreshes the hub's catalog
// of the node (a catalog sync of that node).
func (a *Jobs) SetCatalogRefresh(fn func(ctx context.Context, node string) error) {
	a.refreshCatalog = fn
}

// RefreshCatalog starts the catalog sync of the node a dataset was loaded
// into, so searches find it.
func (a *Jobs) RefreshCatalog(ctx context.Context, p domain.EtlParams) error {
	if a.refreshCatalog == nil || p.Node.Name == domain.HubTarget {
		return nil // the hub's own datasets are not a node's catalog
	}
	if err := a.refreshCatalog(ctx, p.Node.Name); err != nil {
		return fmt.Errorf("refresh catalog of %s: %w", p.Node.Name, err)
	}
	return nil
}

// readHubColumn is readColumn on the hub's warehouse. Identifiers come from
// the migrations (the spec's table is checked against them) and the
// dataset is a parsed UUID.
func (a *Jobs) readHubColumn(ctx context.Context, table, column, dataset string, fn func(uuid.UUID)) (int64, error) {
	id, err := uuid.Parse(dataset)
	if err != nil {
		return 0, temporal.NewNonRetryableApplicationError("bad dataset ID", domain.ErrTypeInvalid, err)
	}
	if _, ok := a.types[table][column]; !ok {
		return 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("no column %s.%s", table, column), domain.ErrTypeInvalid, nil)
	}
	rows, err := a.warehouse.Query(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE dataset_id = toUUID('%s')", column, table, id))
	if err != nil {
		return 0, fmt.Errorf("hub warehouse: read %s.%s: %w", table, column, err)
	}
	defer func() { _ = rows.Close() }()
	var n int64
	for rows.Next() {
		var v uuid.UUID
		if err := rows.Scan(&v); err != nil {
			return n, fmt.Errorf("hub warehouse: read %s.%s: %w", table, column, err)
		}
		fn(v)
		n++
	}
	return n, rows.Err()
}

// hubLoader loads records into the hub's warehouse, one insert per record.
type hubLoader struct {
	a     *Jobs
	table string
	ins   *arrowch.Inserter
	rows  int64
}

func (h *hubLoader) write(ctx context.Context, rec arrow.RecordBatch) error {
	if h.ins == nil {
		names := make([]string, 0, len(h.a.types[h.table]))
		types := make([]string, 0, len(h.a.types[h.table]))
		for n, t := range h.a.types[h.table] {
			names, types = append(names, n), append(types, t)
		}
		ins, err := arrowch.NewInserter(h.table, names, types, rec.Schema())
		if err != nil {
			return temporal.NewNonRetryableApplicationError(err.Error(), domain.ErrTypeInvalid, err)
		}
		h.ins = ins
	}
	n, err := h.ins.Insert(ctx, h.a.warehouse, rec)
	h.rows += int64(n)
	if err != nil {
		return fmt.Errorf("hub warehouse: load %s: %w", h.table, err)
	}
	return nil
}
