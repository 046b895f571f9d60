package activities

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"

	"github.com/syndb/federation/internal/arrowconv"
	"github.com/syndb/federation/internal/domain"
)

// utf8BOM is the byte-order mark some spreadsheets write before a CSV's header.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// errRecordTooLong ends a CSV read at a record over the row cap.
var errRecordTooLong = errors.New("CSV record over the row cap")

// recordLimiter passes a CSV stream through and fails with
// errRecordTooLong once one record (up to a line break outside quotes)
// passes max bytes, so the CSV reader never buffers more than that.
type recordLimiter struct {
	r      io.Reader
	max, n int64
	quoted bool
}

func (l *recordLimiter) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for i, c := range p[:n] {
		switch {
		case c == '"':
			l.quoted = !l.quoted // a doubled quote inside quotes toggles twice
		case c == '\n' && !l.quoted:
			l.n = 0
			continue
		}
		if l.n++; l.n > l.max {
			return i, errRecordTooLong
		}
	}
	return n, err
}

// newCSVReader reads r as CSV: a UTF-8 byte-order mark before the header
// is dropped, and records are capped at maxRow bytes.
func newCSVReader(r io.Reader, maxRow int64) *csv.Reader {
	br := bufio.NewReader(r)
	if b, _ := br.Peek(len(utf8BOM)); bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(&recordLimiter{r: br, max: maxRow})
	cr.ReuseRecord = true
	return cr
}

// readProblem reports a read error that a cap caused, and says whether it was one.
func readProblem(rep *domain.EtlReport, row int64, lim UploadLimits, err error) bool {
	switch {
	case errors.Is(err, errRecordTooLong):
		rep.Add(domain.Problem{Row: row, Problem: fmt.Sprintf("a CSV record over the %d-byte row cap (SYNDB_ETL_MAX_ROW_BYTES)", lim.MaxRowBytes)})
	case errors.Is(err, errUploadTooBig):
		rep.Add(domain.Problem{Row: row, Problem: fmt.Sprintf("the staged file is over the %d-byte upload cap (SYNDB_ETL_MAX_UPLOAD_BYTES)", lim.MaxUploadBytes)})
	default:
		return false
	}
	return true
}

// csvHeader reads the header and checks it against the table: the
// columns' parsers, and whether dataset_id is to be filled in.
func (c fileCheck) csvHeader(cr *csv.Reader, rep *domain.EtlReport) (cols []string, types []*arrowconv.TextColumn, fill bool, err error) {
	header, err := cr.Read()
	if err != nil {
		if !readProblem(rep, 0, c.limits, err) {
			rep.Add(domain.Problem{Problem: "no CSV header: " + err.Error()})
		}
		return nil, nil, false, nil
	}
	cols = slices.Clone(header)
	seen := map[string]bool{}
	for _, col := range cols {
		typ, ok := c.types[col]
		if !ok {
			rep.Add(domain.Problem{Column: clipValue(col), Problem: fmt.Sprintf("table %s has no column %q", c.table, clipValue(col))})
			continue
		}
		if seen[col] {
			rep.Add(domain.Problem{Column: col, Problem: "column appears twice"})
		}
		seen[col] = true
		tc, err := arrowconv.NewTextColumn(typ)
		if err != nil {
			return nil, nil, false, err
		}
		types = append(types, tc)
	}
	for name, typ := range c.types {
		if !seen[name] && !strings.HasPrefix(typ, "Nullable(") && !strings.HasPrefix(typ, "Array(") && name != "dataset_id" {
			rep.Add(domain.Problem{Column: name, Problem: "required column missing"})
		}
	}
	rep.Columns = cols
	return cols, types, !seen["dataset_id"], nil
}

// csvBatches parses a CSV file's checked rows into record batches.
type csvBatches struct {
	fileCheck
	cols  []string
	types []*arrowconv.TextColumn
	// fill is set when the file has no dataset_id: dsType fills it in.
	fill   bool
	dsType *arrowconv.TextColumn
	b      *array.RecordBuilder
	vals   []any
	// pending rows and their cells' bytes are in b, not yet flushed.
	pending      int
	pendingBytes int64
	fn           func(arrow.RecordBatch) error
}

func (c fileCheck) newCSVBatches(cols []string, types []*arrowconv.TextColumn, fill bool, rep *domain.EtlReport, fn func(arrow.RecordBatch) error) *csvBatches {
	fields := make([]arrow.Field, 0, len(cols)+1)
	for i, col := range cols {
		fields = append(fields, arrow.Field{Name: col, Type: types[i].ArrowType(), Nullable: types[i].Nullable()})
	}
	dsType, _ := arrowconv.NewTextColumn("UUID")
	if fill {
		fields = append(fields, arrow.Field{Name: "dataset_id", Type: dsType.ArrowType()})
		rep.Columns = append(rep.Columns, "dataset_id")
	}
	return &csvBatches{fileCheck: c, cols: cols, types: types, fill: fill, dsType: dsType,
		b: array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema(fields, nil)), vals: make([]any, len(cols)), fn: fn}
}

// check parses every cell of a record, the file's row row, under the cell
// cap, and reports whether all of them are good.
func (cb *csvBatches) check(rec []string, row int64, rep *domain.EtlReport) bool {
	ok := true
	for i, cell := range rec {
		if int64(len(cell)) > cb.limits.MaxCellBytes {
			rep.Add(domain.Problem{Row: row, Column: cb.cols[i], Value: clipValue(cell),
				Problem: fmt.Sprintf("a cell of %d bytes, over the %d-byte cell cap (SYNDB_ETL_MAX_CELL_BYTES)", len(cell), cb.limits.MaxCellBytes)})
			ok = false
			continue
		}
		v, err := cb.types[i].Parse(cell)
		if err != nil {
			rep.Add(domain.Problem{Row: row, Column: cb.cols[i], Value: clipValue(cell), Problem: err.Error()})
			ok = false
			continue
		}
		cb.vals[i] = v
		if cb.cols[i] == "dataset_id" && v.(uuid.UUID) != cb.dataset {
			rep.Add(domain.Problem{Row: row, Column: cb.cols[i], Value: cell, Problem: "belongs to another dataset than the job's " + cb.dataset.String()})
			ok = false
		}
	}
	return ok
}

// add appends the checked record to the batch, flushing a full one: at
// most batch rows and about MaxBatchBytes of cells.
func (cb *csvBatches) add(rec []string) error {
	for i, v := range cb.vals {
		cb.types[i].Append(cb.b.Field(i), v)
		cb.pendingBytes += int64(len(rec[i]))
	}
	if cb.fill {
		cb.dsType.Append(cb.b.Field(len(cb.cols)), cb.dataset)
	}
	cb.pending++
	if cb.pending >= cb.batch || cb.pendingBytes >= cb.limits.MaxBatchBytes {
		return cb.flush()
	}
	return nil
}

func (cb *csvBatches) flush() error {
	if cb.pending == 0 {
		return nil
	}
	rec := cb.b.NewRecordBatch()
	defer rec.Release()
	cb.pending, cb.pendingBytes = 0, 0
	return cb.fn(rec)
}

// readCSV streams a CSV file into records of at most c.batch rows and
// about MaxBatchBytes of cells, checking every cell; fn gets the records
// only while the file has no problem. A record over the row cap or a cell
// over the cell cap is a problem that names the cap.
func (c fileCheck) readCSV(ctx context.Context, r io.Reader, rep *domain.EtlReport, fn func(arrow.RecordBatch) error) error {
	cr := newCSVReader(r, c.limits.MaxRowBytes)
	cols, types, fill, err := c.csvHeader(cr, rep)
	if err != nil || rep.ProblemCount > 0 {
		return err
	}
	cb := c.newCSVBatches(cols, types, fill, rep, fn)
	defer cb.b.Release()
	for row := int64(1); ; row++ {
		if row%10000 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if readProblem(rep, row, c.limits, err) {
				return nil
			}
			rep.Add(domain.Problem{Row: row, Problem: "malformed CSV: " + err.Error()})
			if errors.Is(err, csv.ErrFieldCount) {
				continue
			}
			return nil
		}
		rep.Rows++
		if !cb.check(rec, row, rep) || rep.ProblemCount > 0 {
			continue // keep validating; nothing is loaded from a bad file
		}
		if err := cb.add(rec); err != nil {
			return err
		}
	}
	if rep.ProblemCount > 0 {
		return nil
	}
	return cb.flush()
}
