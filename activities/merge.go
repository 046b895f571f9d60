package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/minio/minio-go/v7"

	"github.com/syndb/federation/internal/domain"
)

// GraphResult is the JSON summary of a synapse graph job.
type GraphResult struct {
	Neurons int64 `json:"neurons"`
	Edges   int64 `json:"edges"`
	// InDegree and OutDegree map a degree to the number of neurons with it.
	InDegree  map[int64]int64 `json:"in_degree_distribution"`
	OutDegree map[int64]int64 `json:"out_degree_distribution"`
	MaxIn     int64           `json:"max_in_degree"`
	MaxOut    int64           `json:"max_out_degree"`
}

// MergeJob reads every node's part from S3 and merges them into the job's
// result: a Parquet object beside the parts and a JSON summary.
func (a *Jobs) MergeJob(ctx context.Context, p domain.MergeParams) (domain.MergeResult, error) {
	stop := heartbeat(ctx, func() any { return "merging" })
	defer stop()
	parts := slices.Clone(p.Parts)
	sort.Slice(parts, func(i, j int) bool { return parts[i].Node < parts[j].Node })
	tables := make([]arrow.Table, 0, len(parts))
	defer func() {
		for _, t := range tables {
			t.Release()
		}
	}()
	for _, part := range parts {
		t, err := a.readParquet(ctx, part.Object)
		if err != nil {
			return domain.MergeResult{}, err
		}
		tables = append(tables, t)
	}
	schema := summarySchema
	if p.Spec.Analysis == domain.AnalysisSynapseGraph {
		schema = degreeSchema
	}
	merged, err := concat(schema, tables)
	if err != nil {
		return domain.MergeResult{}, err
	}
	defer merged.Release()
	var summary any
	switch p.Spec.Analysis {
	case domain.AnalysisSummary:
		summary = mergeSummary(p.Spec, merged)
	default:
		summary = mergeGraph(merged)
	}
	raw, err := json.Marshal(summary)
	if err != nil {
		return domain.MergeResult{}, fmt.Errorf("encode summary: %w", err)
	}
	object := fmt.Sprintf("jobs/%s/result.parquet", p.JobID)
	size, err := a.putParquet(ctx, object, merged)
	if err != nil {
		return domain.MergeResult{}, err
	}
	return domain.MergeResult{Object: object, Rows: merged.NumRows(), Bytes: size, Summary: raw}, nil
}

// concat joins the tables' rows into one record batch of schema.
func concat(schema *arrow.Schema, tables []arrow.Table) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, schema.NumFields())
	var rows int64
	for _, t := range tables {
		rows += t.NumRows()
	}
	for i, f := range schema.Fields() {
		var chunks []arrow.Array
		for _, t := range tables {
			idx := t.Schema().FieldIndices(f.Name)
			if len(idx) != 1 {
				return nil, fmt.Errorf("part lacks column %s", f.Name)
			}
			chunks = append(chunks, t.Column(idx[0]).Data().Chunks()...)
		}
		if len(chunks) == 0 {
			b := array.NewBuilder(memory.DefaultAllocator, f.Type)
			cols[i] = b.NewArray()
			b.Release()
			continue
		}
		c, err := array.Concatenate(chunks, memory.DefaultAllocator)
		if err != nil {
			return nil, fmt.Errorf("merge column %s: %w", f.Name, err)
		}
		cols[i] = c
	}
	// The parts' types as Parquet gave them back (a list's element field
	// may be named differently from the one written).
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: schema.Field(i).Name, Type: c.DataType(), Nullable: true}
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rows)
	for _, c := range cols {
		c.Release()
	}
	return rec, nil
}

func mergeGraph(rec arrow.RecordBatch) GraphResult {
	out := GraphResult{InDegree: map[int64]int64{}, OutDegree: map[int64]int64{}, Neurons: rec.NumRows()}
	in := rec.Column(2).(*array.Int64)
	outd := rec.Column(3).(*array.Int64)
	for i := range int(rec.NumRows()) {
		out.InDegree[in.Value(i)]++
		out.OutDegree[outd.Value(i)]++
		out.Edges += outd.Value(i)
		out.MaxIn = max(out.MaxIn, in.Value(i))
		out.MaxOut = max(out.MaxOut, outd.Value(i))
	}
	return out
}

// putParquet writes rec as a Parquet object and returns its size.
func (a *Jobs) putParquet(ctx context.Context, object string, rec arrow.RecordBatch) (int64, error) {
	f, err := os.CreateTemp("", "syndb-part-*.parquet")
	if err != nil {
		return 0, fmt.Errorf("temp file: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }()
	w, err := pqarrow.NewFileWriter(rec.Schema(), f, parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd)),
		pqarrow.DefaultWriterProps())
	if err != nil {
		_ = f.Close()
		return 0, fmt.Errorf("parquet writer: %w", err)
	}
	if err := w.Write(rec); err != nil {
		_ = w.Close()
		return 0, fmt.Errorf("write parquet: %w", err)
	}
	if err := w.Close(); err != nil { // closes f too
		return 0, fmt.Errorf("close parquet: %w", err)
	}
	info, err := a.results.FPutObject(ctx, a.bucket, object, f.Name(), minio.PutObjectOptions{ContentType: "application/vnd.apache.parquet"})
	if err != nil {
		return 0, fmt.Errorf("store %s: %w", object, err)
	}
	return info.Size, nil
}

// readParquet reads a Parquet object into one record batch.
func (a *Jobs) readParquet(ctx context.Context, object string) (arrow.Table, error) {
	dir, err := os.MkdirTemp("", "syndb-merge-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	path := filepath.Join(dir, "part.parquet")
	if err := a.results.FGetObject(ctx, a.bucket, object, path, minio.GetObjectOptions{}); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", object, err)
	}
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", object, err)
	}
	defer func() { _ = rdr.Close() }()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", object, err)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", object, err)
	}
	return tbl, nil
}
