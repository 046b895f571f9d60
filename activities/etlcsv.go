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

	"github.com/syndb/federation/internal/arrowch"
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

// csvTarget is the table a CSV loads into, and the job's dataset.
type csvTarget struct {
	table   string
	types   map[string]string
	dataset uuid.UUID
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
func csvHeader(cr *csv.Reader, t csvTarget, lim UploadLimits, rep *domain.EtlReport) (cols []string, types []*arrowch.TextColumn, fill bool, err error) {
	header, err := cr.Read()
	if err != nil {
		if !readProblem(rep, 0, lim, err) {
			rep.Add(domain.Problem{Problem: "no CSV header: " + err.Error()})
		}
		return nil, nil, false, nil
	}
	cols = slices.Clone(header)
	seen := map[string]bool{}
	for _, c := range cols {
		typ, ok := t.types[c]
		if !ok {
			rep.Add(domain.Problem{Column: clipValue(c), Problem: fmt.Sprintf("table %s has no column %q", t.table, clipValue(c))})
			continue
		}
		if seen[c] {
			rep.Add(domain.Problem{Column: c, Problem: "column appears twice"})
		}
		seen[c] = true
		tc, err := arrowch.NewTextColumn(typ)
		if err != nil {
			return nil, nil, false, err
		}
		types = append(types, tc)
	}
	for name, typ := range t.types {
		if !seen[name] && !strings.HasPrefix(typ, "Nullable(") && !strings.HasPrefix(typ, "Array(") && name != "dataset_id" {
			rep.Add(domain.Problem{Column: name, Problem: "required column missing"})
		}
	}
	rep.Columns = cols
	return cols, types, !seen["dataset_id"], nil
}

// csvRows streams a CSV file into records of at most batch rows and about
// lim.MaxBatchBytes of cells, checking every cell. A record over the row
// cap or a cell over the cell cap is a problem that names the cap.
func csvRows(ctx context.Context, r io.Reader, t csvTarget, lim UploadLimits, rep *domain.EtlReport, batch int, fn func(arrow.RecordBatch) error) error {
	cr := newCSVReader(r, lim.MaxRowBytes)
	cols, types, fill, err := csvHeader(cr, t, lim, rep)
	if err != nil || rep.ProblemCount > 0 {
		return err
	}
	fields := make([]arrow.Field, 0, len(cols)+1)
	for i, c := range cols {
		fields = append(fields, arrow.Field{Name: c, Type: types[i].ArrowType(), Nullable: types[i].Nullable()})
	}
	dsType, _ := arrowch.NewTextColumn("UUID")
	if fill {
		fields = append(fields, arrow.Field{Name: "dataset_id", Type: dsType.ArrowType()})
		rep.Columns = append(rep.Columns, "dataset_id")
	}
	schema := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	pending, pendingBytes := 0, int64(0)
	flush := func() error {
		if pending == 0 {
			return nil
		}
		rec := b.NewRecordBatch()
		defer rec.Release()
		pending, pendingBytes = 0, 0
		return fn(rec)
	}
	vals := make([]any, len(cols))
	for row := int64(1); ; row++ {
		if row%10000 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if readProblem(rep, row, lim, err) {
				return nil
			}
			rep.Add(domain.Problem{Row: row, Problem: "malformed CSV: " + err.Error()})
			if errors.Is(err, csv.ErrFieldCount) {
				continue
			}
			return nil
		}
		rep.Rows++
		ok := true
		for i, cell := range rec {
			if int64(len(cell)) > lim.MaxCellBytes {
				rep.Add(domain.Problem{Row: row, Column: cols[i], Value: clipValue(cell),
					Problem: fmt.Sprintf("a cell of %d bytes, over the %d-byte cell cap (SYNDB_ETL_MAX_CELL_BYTES)", len(cell), lim.MaxCellBytes)})
				ok = false
				continue
			}
			v, err := types[i].Parse(cell)
			if err != nil {
				rep.Add(domain.Problem{Row: row, Column: cols[i], Value: clipValue(cell), Problem: err.Error()})
				ok = false
				continue
			}
			vals[i] = v
			if cols[i] == "dataset_id" && v.(uuid.UUID) != t.dataset {
				rep.Add(domain.Problem{Row: row, Column: cols[i], Value: cell, Problem: "belongs to another dataset than the job's " + t.dataset.String()})
				ok = false
			}
		}
		if !ok || rep.ProblemCount > 0 {
			continue // keep validating; nothing is loaded from a bad file
		}
		for i, v := range vals {
			types[i].Append(b.Field(i), v)
			pendingBytes += int64(len(rec[i]))
		}
		if fill {
			dsType.Append(b.Field(len(cols)), t.dataset)
		}
		pending++
		if pending >= batch || pendingBytes >= lim.MaxBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if rep.ProblemCount > 0 {
		return nil
	}
	return flush()
}

func clipValue(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
