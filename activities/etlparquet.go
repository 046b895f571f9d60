package activities

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/google/uuid"

	"github.com/syndb/federation/internal/arrowconv"
	"github.com/syndb/federation/internal/domain"
)

// openParquet opens a staged Parquet file whose pages are streamed from
// disk (never a whole column chunk in memory) and refused past the page cap.
func openParquet(path string, lim UploadLimits) (*file.Reader, error) {
	props := parquet.NewReaderProperties(memory.DefaultAllocator)
	props.BufferedStreamEnabled = true
	props.BufferSize = 1 << 20
	props.MaxCompressedPageSize = lim.MaxPageBytes
	props.MaxUncompressedPageSize = lim.MaxPageBytes
	return file.OpenParquetFile(path, false, file.WithReadProps(props))
}

// parquetMetaProblems checks what the footer declares before anything is
// read: rows against the file's size, and each column chunk's sizes.
func parquetMetaProblems(pf *file.Reader, size int64, lim UploadLimits, rep *domain.EtlReport) {
	if rows := pf.NumRows(); rows < 0 || rows > size/lim.MinRowBytes {
		rep.Add(domain.Problem{Problem: fmt.Sprintf("the file declares %d rows in %d bytes: more than one row per %d bytes (SYNDB_ETL_MIN_ROW_BYTES)",
			rows, size, lim.MinRowBytes)})
		return
	}
	md := pf.MetaData()
	for g := range pf.NumRowGroups() {
		rg := md.RowGroup(g)
		for c := range rg.NumColumns() {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				rep.Add(domain.Problem{Problem: fmt.Sprintf("row group %d, column %d: %v", g, c, err)})
				return
			}
			name := columnName(cc.PathInSchema())
			switch {
			case cc.TotalCompressedSize() < 0 || cc.TotalCompressedSize() > size:
				rep.Add(domain.Problem{Column: name, Problem: fmt.Sprintf("row group %d declares a column chunk of %d bytes in a file of %d",
					g, cc.TotalCompressedSize(), size)})
			case cc.TotalUncompressedSize() < 0 || cc.TotalUncompressedSize() > lim.MaxColumnChunkBytes:
				rep.Add(domain.Problem{Column: name, Problem: fmt.Sprintf("row group %d: a column chunk of %d bytes uncompressed, over the %d-byte column-chunk cap (SYNDB_ETL_MAX_COLUMN_CHUNK_BYTES)",
					g, cc.TotalUncompressedSize(), lim.MaxColumnChunkBytes)})
			case cc.NumValues() < 0 || cc.NumValues() > size:
				rep.Add(domain.Problem{Column: name, Problem: fmt.Sprintf("row group %d declares %d values in a file of %d bytes", g, cc.NumValues(), size)})
			}
		}
	}
}

func columnName(p parquet.ColumnPath) string {
	if len(p) == 0 {
		return ""
	}
	return p[0]
}

// chunkScan is what scanning one column chunk found.
type chunkScan struct {
	rows, levels int64
	// rowBytes is the most bytes one row of the chunk takes decoded.
	rowBytes int64
	// bigCell is the size of the first value over the cell cap, at bigRow.
	bigCell, bigRow int64
}

// scanChunk reads one column chunk page by page without building arrays
// or copying values (they alias the page or the dictionary: a dictionary
// value repeated on every row costs its size once), checks each value against the cell cap,
// and measures the largest row. It stops at a value over the cap, or at
// more values or rows than the footer declared.
func scanChunk[T any](cr file.ColumnChunkReader, read func(int64, []T, []int16, []int16) (int64, int, error),
	size func(T) int64, maxCell, declaredValues, declaredRows int64) (chunkScan, error) {
	const n = 4096
	vals, def, rep := make([]T, n), make([]int16, n), make([]int16, n)
	desc := cr.Descriptor()
	maxDef, maxRep := desc.MaxDefinitionLevel(), desc.MaxRepetitionLevel()
	var s chunkScan
	var row int64
	for empty := 0; cr.HasNext() && empty < 2; {
		total, nv, err := read(n, vals, def, rep)
		if err != nil {
			return s, err
		}
		if total == 0 { // the end of a page: HasNext turns to the next
			empty++
			continue
		}
		empty = 0
		vi := 0
		for i := range total {
			if maxRep == 0 || rep[i] == 0 {
				s.rowBytes, row = max(s.rowBytes, row), 0
				s.rows++
			}
			s.levels++
			if (maxDef != 0 && def[i] != maxDef) || vi >= nv {
				row++ // a null: one bit and an offset
				continue
			}
			sz := size(vals[vi])
			vi++
			if sz > maxCell {
				s.bigCell, s.bigRow = sz, s.rows
				return s, nil
			}
			row += sz + 4
		}
		if s.levels > declaredValues || s.rows > declaredRows {
			return s, fmt.Errorf("its pages hold more values than the %d values and %d rows its column chunk declares", declaredValues, declaredRows)
		}
	}
	s.rowBytes = max(s.rowBytes, row)
	return s, cr.Err()
}

// scanColumn scans one column chunk of any physical type.
func scanColumn(cr file.ColumnChunkReader, maxCell, values, rows int64) (chunkScan, error) {
	switch r := cr.(type) {
	case *file.ByteArrayColumnChunkReader:
		return scanChunk(r, r.ReadBatchInPage, func(v parquet.ByteArray) int64 { return int64(len(v)) }, maxCell, values, rows)
	case *file.FixedLenByteArrayColumnChunkReader:
		return scanChunk(r, r.ReadBatchInPage, func(v parquet.FixedLenByteArray) int64 { return int64(len(v)) }, maxCell, values, rows)
	case *file.Int32ColumnChunkReader:
		return scanChunk(r, r.ReadBatchInPage, func(int32) int64 { return 4 }, maxCell, values, rows)
	case *file.Int64ColumnChunkReader:
		return scanChunk(r, r.ReadBatchInPage, func(int64) int64 { return 8 }, maxCell, values, rows)
	case *file.Int96ColumnChunkReader:
		return scanChunk(r, r.ReadBatchInPage, func(parquet.Int96) int64 { return 12 }, maxCell, values, rows)
	case *file.Float32ColumnChunkReader:
		return scanChunk(r, r.ReadBatchInPage, func(float32) int64 { return 4 }, maxCell, values, rows)
	case *file.Float64ColumnChunkReader:
		return scanChunk(r, r.ReadBatchInPage, func(float64) int64 { return 8 }, maxCell, values, rows)
	case *file.BooleanColumnChunkReader:
		return scanChunk(r, r.ReadBatchInPage, func(bool) int64 { return 1 }, maxCell, values, rows)
	default:
		return chunkScan{}, fmt.Errorf("unsupported physical type %s", cr.Type())
	}
}

// parquetScan reads every column chunk once under the caps (page, cell,
// declared values) and returns how many rows a batch may hold so that its
// decoded bytes stay near lim.MaxBatchBytes.
func parquetScan(ctx context.Context, pf *file.Reader, lim UploadLimits, rep *domain.EtlReport) (int64, error) {
	widths := make([]int64, pf.MetaData().Schema.NumColumns())
	var base int64
	for g := range pf.NumRowGroups() {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		rg := pf.RowGroup(g)
		for c := range rg.NumColumns() {
			cc, err := rg.MetaData().ColumnChunk(c)
			if err != nil {
				rep.Add(domain.Problem{Problem: fmt.Sprintf("row group %d, column %d: %v", g, c, err)})
				return 0, nil
			}
			name := columnName(cc.PathInSchema())
			cr, err := rg.Column(c)
			if err != nil {
				rep.Add(domain.Problem{Column: name, Problem: "unreadable Parquet: " + err.Error()})
				return 0, nil
			}
			s, err := scanColumn(cr, lim.MaxCellBytes, cc.NumValues(), rg.NumRows())
			switch {
			case err != nil && strings.Contains(err.Error(), "exceeds configured limit"):
				rep.Add(domain.Problem{Column: name, Problem: fmt.Sprintf("row group %d: a page over the %d-byte page cap (SYNDB_ETL_MAX_PAGE_BYTES): %v", g, lim.MaxPageBytes, err)})
			case err != nil:
				rep.Add(domain.Problem{Column: name, Problem: fmt.Sprintf("unreadable Parquet: row group %d: %v", g, err)})
			case s.bigCell > 0:
				rep.Add(domain.Problem{Row: base + s.bigRow, Column: name, Problem: fmt.Sprintf("a value of %d bytes, over the %d-byte cell cap (SYNDB_ETL_MAX_CELL_BYTES)", s.bigCell, lim.MaxCellBytes)})
			}
			widths[c] = max(widths[c], s.rowBytes)
		}
		base += rg.NumRows()
	}
	var width int64
	for _, w := range widths {
		width += w
	}
	return min(maxBatchRows, max(1, lim.MaxBatchBytes/max(width, 1))), nil
}

// readParquet reads a Parquet file in batches: the footer is checked first
// (declared rows against the file's size, column-chunk sizes), then every
// column is scanned under the page and cell caps, then the rows are read
// in batches sized so a batch stays near lim.MaxBatchBytes decoded.
func (c fileCheck) readParquet(ctx context.Context, path string, rep *domain.EtlReport, fn func(arrow.RecordBatch) error) error {
	lim := c.limits
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("staged file: %w", err)
	}
	pf, err := openParquet(path, lim)
	if err != nil {
		rep.Add(domain.Problem{Problem: "not a Parquet file: " + err.Error()})
		return nil
	}
	defer func() { _ = pf.Close() }()
	if parquetMetaProblems(pf, st.Size(), lim, rep); rep.ProblemCount > 0 {
		return nil
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: maxBatchRows}, memory.DefaultAllocator)
	if err != nil {
		rep.Add(domain.Problem{Problem: "unreadable Parquet: " + err.Error()})
		return nil
	}
	schema, err := fr.Schema()
	if err != nil {
		rep.Add(domain.Problem{Problem: "unreadable Parquet: " + err.Error()})
		return nil
	}
	nullable, err := parquetColumns(schema, c.table, c.types, rep)
	if err != nil || rep.ProblemCount > 0 {
		return err
	}
	batch, err := parquetScan(ctx, pf, lim, rep)
	if err != nil || rep.ProblemCount > 0 {
		return err
	}
	fr.Props.BatchSize = batch
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		rep.Add(domain.Problem{Problem: "unreadable Parquet: " + err.Error()})
		return nil
	}
	defer rr.Release()
	var row int64
	for rr.Next() {
		rec := rr.RecordBatch()
		if err := parquetRecordProblems(rec, row, nullable, c.dataset, rep); err != nil {
			return err
		}
		row += rec.NumRows()
		rep.Rows = row
		if rep.ProblemCount == 0 {
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
	return rr.Err()
}

// parquetColumns checks the file's columns against the table (names,
// types, required columns) and returns which of them are nullable.
func parquetColumns(schema *arrow.Schema, table string, tableTypes map[string]string, rep *domain.EtlReport) (map[string]bool, error) {
	nullable := map[string]bool{}
	for _, f := range schema.Fields() {
		rep.Columns = append(rep.Columns, f.Name)
		t, ok := tableTypes[f.Name]
		if !ok {
			rep.Add(domain.Problem{Column: clipValue(f.Name), Problem: fmt.Sprintf("table %s has no column %q", table, clipValue(f.Name))})
			continue
		}
		want, err := arrowconv.ArrowType(t)
		if err != nil {
			return nil, err
		}
		if !arrow.TypeEqual(want, f.Type) && want.String() != f.Type.String() {
			rep.Add(domain.Problem{Column: f.Name, Problem: fmt.Sprintf("type %s, the table needs %s (%s)", f.Type, want, t)})
		}
		nullable[f.Name] = strings.HasPrefix(t, "Nullable(")
	}
	if _, ok := nullable["dataset_id"]; !ok {
		rep.Add(domain.Problem{Column: "dataset_id", Problem: "a Parquet file must carry dataset_id"})
	}
	for name, t := range tableTypes {
		if _, ok := nullable[name]; !ok && name != "dataset_id" && !strings.HasPrefix(t, "Nullable(") && !strings.HasPrefix(t, "Array(") {
			rep.Add(domain.Problem{Column: name, Problem: "required column missing"})
		}
	}
	return nullable, nil
}

// parquetRecordProblems checks one batch: required values present, and
// every row of the job's dataset. row is the rows before the batch.
func parquetRecordProblems(rec arrow.RecordBatch, row int64, nullable map[string]bool, dataset uuid.UUID, rep *domain.EtlReport) error {
	for ci, f := range rec.Schema().Fields() {
		col := rec.Column(ci)
		if !nullable[f.Name] && col.NullN() > 0 {
			for i := range col.Len() {
				if col.IsNull(i) {
					rep.Add(domain.Problem{Row: row + int64(i) + 1, Column: f.Name, Problem: "a value is required"})
				}
			}
		}
		if f.Name == "dataset_id" {
			ids, err := uuidColumn(col)
			if err != nil {
				return err
			}
			for i := range ids.Len() {
				if ids.IsValid(i) && uuid.UUID(ids.Value(i)) != dataset {
					rep.Add(domain.Problem{Row: row + int64(i) + 1, Column: f.Name, Value: uuid.UUID(ids.Value(i)).String(),
						Problem: "belongs to another dataset than the job's " + dataset.String()})
				}
			}
		}
	}
	return nil
}
