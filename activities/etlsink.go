package activities

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/arrowconv"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/wire"
)

// sink is the warehouse an ETL job loads into: a node's, over its Flight
// server, or the hub's own ClickHouse.
type sink interface {
	// scan calls fn with each value of a UUID column of table for dataset
	// and returns the number of rows.
	scan(ctx context.Context, table, column, dataset string, fn func(uuid.UUID)) (int64, error)
	// open starts a load of records of schema into table: at most rows
	// rows, all of dataset.
	open(ctx context.Context, table, dataset string, rows int64, schema *arrow.Schema) (load, error)
	// catalogNode names the node whose catalog lists what was loaded, ""
	// when no node's does (the hub's own datasets).
	catalogNode() string
}

// load is one load into a sink: write each record, finish to learn the
// rows loaded, close always.
type load interface {
	write(ctx context.Context, rec arrow.RecordBatch) error
	finish(ctx context.Context) (int64, error)
	close()
}

// hubWarehouse is what ETL into the hub needs of its ClickHouse.
type hubWarehouse interface {
	arrowconv.Preparer
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// nodeSink loads into a node over its Flight server.
type nodeSink struct {
	flight nodeFlight
	node   domain.NodeRef
}

func (s nodeSink) scan(ctx context.Context, table, column, dataset string, fn func(uuid.UUID)) (int64, error) {
	rd, done, err := s.flight.read(ctx, s.node, &wire.FlightQuery{Table: table, Columns: []string{column}, DatasetIds: []string{dataset}})
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

// open asks for a write ticket for the record's columns, table and
// dataset that allows rows rows: the node loads no more.
func (s nodeSink) open(ctx context.Context, table, dataset string, rows int64, schema *arrow.Schema) (load, error) {
	cols := make([]string, 0, schema.NumFields())
	for _, f := range schema.Fields() {
		cols = append(cols, f.Name)
	}
	return s.flight.put(ctx, s.node, &wire.FlightQuery{Table: table, Columns: cols, DatasetIds: []string{dataset},
		Limit: uint64(rows)}, schema)
}

func (s nodeSink) catalogNode() string { return s.node.Name }

// hubSink loads into the hub's own warehouse. Identifiers come from the
// migrations (the spec's table is checked against them) and the dataset
// is a parsed UUID.
type hubSink struct {
	warehouse hubWarehouse
	types     map[string]map[string]string
}

func (s hubSink) scan(ctx context.Context, table, column, dataset string, fn func(uuid.UUID)) (int64, error) {
	id, err := uuid.Parse(dataset)
	if err != nil {
		return 0, temporal.NewNonRetryableApplicationError("bad dataset ID", domain.ErrTypeInvalid, err)
	}
	if _, ok := s.types[table][column]; !ok {
		return 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("no column %s.%s", table, column), domain.ErrTypeInvalid, nil)
	}
	rows, err := s.warehouse.Query(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE dataset_id = toUUID('%s')", column, table, id))
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

// open prepares an insert of the record's columns into table; the rows
// were checked against the dataset and counted by the validation.
func (s hubSink) open(_ context.Context, table, _ string, _ int64, schema *arrow.Schema) (load, error) {
	names := make([]string, 0, len(s.types[table]))
	types := make([]string, 0, len(s.types[table]))
	for n, t := range s.types[table] {
		names, types = append(names, n), append(types, t)
	}
	ins, err := arrowconv.NewInserter(table, names, types, schema)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), domain.ErrTypeInvalid, err)
	}
	return &hubLoad{warehouse: s.warehouse, table: table, ins: ins}, nil
}

func (hubSink) catalogNode() string { return "" }

// hubLoad loads records into the hub's warehouse, one insert per record.
type hubLoad struct {
	warehouse hubWarehouse
	table     string
	ins       *arrowconv.Inserter
	rows      int64
}

func (h *hubLoad) write(ctx context.Context, rec arrow.RecordBatch) error {
	n, err := h.ins.Insert(ctx, h.warehouse, rec)
	h.rows += int64(n)
	if err != nil {
		return fmt.Errorf("hub warehouse: load %s: %w", h.table, err)
	}
	return nil
}

func (h *hubLoad) finish(context.Context) (int64, error) { return h.rows, nil }

func (h *hubLoad) close() {}
