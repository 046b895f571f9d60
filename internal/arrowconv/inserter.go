package arrowconv

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"

	"github.com/syndb/federation/internal/clickhouse"
)

// ErrSchema is wrapped by every error about records that do not fit the
// table they are loaded into: a missing column, a type mismatch, a NULL in a
// column that is not Nullable.
var ErrSchema = errors.New("records do not fit the table")

// Columns is the column-wise side of a prepared batch (driver.Batch has it).
type Columns interface {
	Column(int) driver.BatchColumn
}

// Preparer prepares an INSERT batch (driver.Conn is one).
type Preparer interface {
	PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error)
}

// Inserter loads Arrow records of one schema into one ClickHouse table,
// through INSERT INTO table (columns…) with the records' fields as the
// explicit column list. Columns of the table the records lack take their
// defaults.
type Inserter struct {
	table  string
	schema *arrow.Schema
	codecs []codec
	query  string
}

// NewInserter checks that records of schema fit table, whose columns are
// named names and have ClickHouse types chTypes (as system.columns gives
// them), and returns an Inserter for them. Every field of schema must name a
// column of the table, once, with the Arrow type ArrowType gives that
// column; timestamps may carry any time zone, and list elements any
// nullability. Errors wrap ErrSchema (or ErrUnsupportedType).
func NewInserter(table string, names, chTypes []string, schema *arrow.Schema) (*Inserter, error) {
	if !clickhouse.ValidIdent(table) {
		return nil, fmt.Errorf("%w: table %q is not an identifier", ErrSchema, table)
	}
	if len(names) != len(chTypes) {
		return nil, fmt.Errorf("%d column names for %d types", len(names), len(chTypes))
	}
	if schema.NumFields() == 0 {
		return nil, fmt.Errorf("%w: the records have no columns", ErrSchema)
	}
	byName := make(map[string]string, len(names))
	for i, n := range names {
		byName[n] = chTypes[i]
	}
	in := &Inserter{table: table, schema: schema}
	seen := make(map[string]bool, schema.NumFields())
	quoted := make([]string, 0, schema.NumFields())
	for _, f := range schema.Fields() {
		typ, ok := byName[f.Name]
		if !ok {
			return nil, fmt.Errorf("%w: table %s has no column %q", ErrSchema, table, f.Name)
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("%w: column %q appears twice in the records", ErrSchema, f.Name)
		}
		seen[f.Name] = true
		if !clickhouse.ValidIdent(f.Name) {
			return nil, fmt.Errorf("%w: column %q is not an identifier", ErrSchema, f.Name)
		}
		t, err := parseType(typ)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", f.Name, err)
		}
		if want := t.arrowType(); !fits(want, f.Type) {
			return nil, fmt.Errorf("%w: column %s is %s in the records, but ClickHouse %s takes %s",
				ErrSchema, f.Name, f.Type, typ, want)
		}
		in.codecs = append(in.codecs, newCodec(t))
		quoted = append(quoted, "`"+f.Name+"`")
	}
	in.query = "INSERT INTO `" + table + "` (" + strings.Join(quoted, ", ") + ")"
	return in, nil
}

// fits reports whether values of Arrow type got can be loaded where want is
// expected.
func fits(want, got arrow.DataType) bool {
	switch w := want.(type) {
	case *arrow.ListType:
		g, ok := got.(*arrow.ListType)
		return ok && fits(w.Elem(), g.Elem())
	case *arrow.TimestampType:
		g, ok := got.(*arrow.TimestampType)
		return ok && g.Unit == w.Unit
	}
	return arrow.TypeEqual(want, got)
}

// Query is the INSERT statement to prepare a batch with.
func (in *Inserter) Query() string { return in.query }

// Append converts every column of rec and then appends them to dst, a
// batch prepared with Query. Nothing is appended when a column does not
// convert.
func (in *Inserter) Append(dst Columns, rec arrow.RecordBatch) error {
	if !rec.Schema().Equal(in.schema) {
		return fmt.Errorf("%w: a record's schema changed mid-stream", ErrSchema)
	}
	vals := make([]any, len(in.codecs))
	for i, c := range in.codecs {
		col := rec.Column(i)
		if c.badNulls(col) {
			return fmt.Errorf("%w: column %s holds NULLs but is not Nullable in %s",
				ErrSchema, in.schema.Field(i).Name, in.table)
		}
		v, err := c.column(col)
		if err != nil {
			return fmt.Errorf("convert column %s: %w", in.schema.Field(i).Name, err)
		}
		vals[i] = v
	}
	for i, v := range vals {
		if err := dst.Column(i).Append(v); err != nil {
			return fmt.Errorf("append column %s: %w", in.schema.Field(i).Name, err)
		}
	}
	return nil
}

// Insert loads rec into the table in one INSERT and returns its row count.
func (in *Inserter) Insert(ctx context.Context, conn Preparer, rec arrow.RecordBatch) (int, error) {
	if rec.NumRows() == 0 {
		return 0, nil
	}
	batch, err := conn.PrepareBatch(ctx, in.query)
	if err != nil {
		return 0, fmt.Errorf("prepare insert into %s: %w", in.table, err)
	}
	if err := in.Append(batch, rec); err != nil {
		_ = batch.Abort()
		return 0, err
	}
	if err := batch.Send(); err != nil {
		return 0, fmt.Errorf("insert into %s: %w", in.table, err)
	}
	return int(rec.NumRows()), nil
}
