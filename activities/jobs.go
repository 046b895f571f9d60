package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/arrowch"
	"github.com/syndb/federation/internal/fedpb"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/routing"
	"github.com/syndb/federation/internal/store"
)

// Analyses a job can run.
const (
	// AnalysisSummary: count, mean, standard deviation, min, max and
	// quantiles of one numeric column, per dataset, and over all of them.
	AnalysisSummary = "summary"
	// AnalysisSynapseGraph: the synapse connectivity graph (pre → post):
	// each neuron's in and out degree, and the degree distributions.
	AnalysisSynapseGraph = "synapse_graph"
)

// AnalyticsSpec is what an analytics job computes, and where.
type AnalyticsSpec struct {
	Analysis   string    `json:"analysis"`
	Table      string    `json:"table,omitempty"`
	Column     string    `json:"column,omitempty"`
	Quantiles  []float64 `json:"quantiles,omitempty"`
	DatasetIDs []string  `json:"dataset_ids,omitempty"`
	// Nodes limits the job to these nodes (all routable nodes when empty).
	Nodes []string `json:"nodes,omitempty"`
	// RequireAll fails the job when a node cannot take part, instead of
	// completing it as partial.
	RequireAll bool `json:"require_all,omitempty"`
}

// Validate checks a spec against the tables the hub knows.
func (s *AnalyticsSpec) Validate(columns map[string]map[string]int) error {
	switch s.Analysis {
	case AnalysisSummary:
		if _, ok := columns[s.Table][s.Column]; !ok {
			return fmt.Errorf("summary needs a known table and column: %q.%q", s.Table, s.Column)
		}
		for _, q := range s.Quantiles {
			if q <= 0 || q >= 1 || math.IsNaN(q) {
				return fmt.Errorf("quantile %v is outside (0, 1)", q)
			}
		}
		if len(s.Quantiles) > 16 {
			return errors.New("at most 16 quantiles")
		}
	case AnalysisSynapseGraph:
		if s.Table != "" || s.Column != "" {
			return errors.New("synapse_graph reads the synapse table: name no table or column")
		}
	default:
		return fmt.Errorf("unknown analysis %q (known: %s, %s)", s.Analysis, AnalysisSummary, AnalysisSynapseGraph)
	}
	if len(s.DatasetIDs) > 1000 {
		return errors.New("at most 1000 dataset_ids")
	}
	for _, id := range s.DatasetIDs {
		if _, err := uuid.Parse(id); err != nil {
			return fmt.Errorf("dataset_id %q is not a UUID", id)
		}
	}
	return nil
}

// minSchema is the schema version a node needs for the spec.
func (s *AnalyticsSpec) minSchema(columns map[string]map[string]int) int {
	if s.Analysis == AnalysisSynapseGraph {
		return max(columns["synapse"]["pre_id"], columns["synapse"]["post_id"])
	}
	return columns[s.Table][s.Column]
}

// jobStore is what the job activities need of PostgreSQL.
type jobStore interface {
	Clusters(ctx context.Context, activeOnly bool) ([]store.Cluster, error)
	StartJob(ctx context.Context, id uuid.UUID) error
	FinishJob(ctx context.Context, id uuid.UUID, o store.JobOutcome) error
}

// objectStore is what the job activities need of S3.
type objectStore interface {
	FPutObject(ctx context.Context, bucket, object, filePath string, opts minio.PutObjectOptions) (minio.UploadInfo, error)
	FGetObject(ctx context.Context, bucket, object, filePath string, opts minio.GetObjectOptions) error
	GetObject(ctx context.Context, bucket, object string, opts minio.GetObjectOptions) (*minio.Object, error)
	RemoveObject(ctx context.Context, bucket, object string, opts minio.RemoveObjectOptions) error
	StatObject(ctx context.Context, bucket, object string, opts minio.StatObjectOptions) (minio.ObjectInfo, error)
}

// Jobs holds the activities of analytics jobs.
type Jobs struct {
	store         jobStore
	nodes         nodeCaller
	s3            objectStore
	bucket        string
	staging       objectStore
	stagingBucket string
	columns       map[string]map[string]int
	types         map[string]map[string]string
	// warehouse is the hub's ClickHouse, for ETL into the hub (SetWarehouse).
	warehouse hubWarehouse
	// refreshCatalog starts a node's catalog sync (SetCatalogRefresh).
	refreshCatalog func(ctx context.Context, node string) error
	// limits bound what reading a staged file may cost (SetUploadLimits).
	limits UploadLimits
	log    *slog.Logger
}

// NewJobs returns the job activities: results go to bucket, uploads are
// staged in stagingBucket; migrations tell which schema a job needs.
func NewJobs(st jobStore, nodes nodeCaller, s3 objectStore, bucket, stagingBucket string, migrations []migrate.Migration, log *slog.Logger) *Jobs {
	return &Jobs{store: st, nodes: nodes, s3: s3, bucket: bucket, staging: s3, stagingBucket: stagingBucket,
		limits: DefaultUploadLimits, columns: migrate.ColumnVersions(migrations), types: migrate.ColumnTypes(migrations), log: log}
}

// hubWarehouse is what ETL into the hub needs of its ClickHouse.
type hubWarehouse interface {
	arrowch.Preparer
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// SetWarehouse lets ETL jobs load into the hub's own warehouse.
func (a *Jobs) SetWarehouse(w hubWarehouse) { a.warehouse = w }

// JobRef names a job.
type JobRef struct {
	JobID string `json:"job_id"`
}

// StartJob marks the job running.
func (a *Jobs) StartJob(ctx context.Context, p JobRef) error {
	id, err := uuid.Parse(p.JobID)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("bad job ID", ErrTypeInvalid, err)
	}
	return a.store.StartJob(ctx, id)
}

// JobTargetsParams is the input of JobTargets.
type JobTargetsParams struct {
	Spec AnalyticsSpec `json:"spec"`
}

// JobTargetsResult lists the nodes a job runs on, and those left out.
type JobTargetsResult struct {
	Nodes    []NodeRef           `json:"nodes"`
	Excluded []routing.Exclusion `json:"excluded"`
}

// JobTargets routes a job: Healthy, then Degraded nodes whose schema has
// what the analysis reads.
func (a *Jobs) JobTargets(ctx context.Context, p JobTargetsParams) (JobTargetsResult, error) {
	// Active, registered nodes: revoked ones are no longer the federation's.
	cs, err := a.store.Clusters(ctx, true)
	if err != nil {
		return JobTargetsResult{}, err
	}
	plan := routing.Route(routing.FromClusters(cs), routing.Need{MinSchema: p.Spec.minSchema(a.columns), Nodes: p.Spec.Nodes})
	byName := map[string]store.Cluster{}
	for _, c := range cs {
		byName[c.Name] = c
	}
	out := JobTargetsResult{Nodes: []NodeRef{}, Excluded: plan.Excluded}
	for _, n := range plan.Included {
		c := byName[n.Name]
		out.Nodes = append(out.Nodes, NodeRef{Name: c.Name, PeerID: c.PeerID, Addrs: c.Addrs, SchemaVersion: c.SchemaVersion})
	}
	if out.Excluded == nil {
		out.Excluded = []routing.Exclusion{}
	}
	return out, nil
}

// NodeAnalysisParams is the input of NodeAnalysis.
type NodeAnalysisParams struct {
	JobID string        `json:"job_id"`
	Node  NodeRef       `json:"node"`
	Spec  AnalyticsSpec `json:"spec"`
}

// NodePart is one node's part of a job's result, stored in S3 as Parquet.
type NodePart struct {
	Node       string `json:"node"`
	Object     string `json:"object"`
	Rows       int64  `json:"rows"`
	Bytes      int64  `json:"bytes"`
	DurationMS int64  `json:"duration_ms"`
}

// NodeAnalysis runs the analysis on one node and stores its part in S3. A
// summary, which is small, is computed by the node's ClickHouse and comes
// back as the node's AnalyticsQuery reply; the synapse graph is pulled as
// rows from the node's Flight server (a ticket from GetFlightEndpoint) and
// its degrees computed here, batch by batch. It heartbeats its progress, so
// a cancelled job stops it promptly.
func (a *Jobs) NodeAnalysis(ctx context.Context, p NodeAnalysisParams) (NodePart, error) {
	started := time.Now()
	var rows atomic.Int64
	stop := heartbeat(ctx, func() any { return map[string]any{"node": p.Node.Name, "rows": rows.Load()} })
	defer stop()
	var (
		rec arrow.RecordBatch
		err error
	)
	switch p.Spec.Analysis {
	case AnalysisSummary:
		rec, err = a.nodeSummary(ctx, p)
	case AnalysisSynapseGraph:
		rec, err = a.nodeGraph(ctx, p, &rows)
	default:
		return NodePart{}, temporal.NewNonRetryableApplicationError("unknown analysis "+p.Spec.Analysis, ErrTypeInvalid, nil)
	}
	if err != nil {
		return NodePart{}, err
	}
	defer rec.Release()
	object := fmt.Sprintf("jobs/%s/parts/%s.parquet", p.JobID, p.Node.Name)
	size, err := a.putParquet(ctx, object, rec)
	if err != nil {
		return NodePart{}, err
	}
	part := NodePart{Node: p.Node.Name, Object: object, Rows: rec.NumRows(), Bytes: size, DurationMS: time.Since(started).Milliseconds()}
	activity.GetLogger(ctx).Info("node part stored", "node", p.Node.Name, "rows", part.Rows, "bytes", size, "took", time.Since(started))
	return part, nil
}

var summarySchema = arrow.NewSchema([]arrow.Field{
	{Name: "node", Type: arrow.BinaryTypes.String},
	{Name: "dataset_id", Type: arrow.BinaryTypes.String},
	{Name: "count", Type: arrow.PrimitiveTypes.Uint64},
	{Name: "sum", Type: arrow.PrimitiveTypes.Float64},
	{Name: "sum_squares", Type: arrow.PrimitiveTypes.Float64},
	{Name: "mean", Type: arrow.PrimitiveTypes.Float64},
	{Name: "stddev", Type: arrow.PrimitiveTypes.Float64},
	{Name: "min", Type: arrow.PrimitiveTypes.Float64},
	{Name: "max", Type: arrow.PrimitiveTypes.Float64},
	{Name: "quantiles", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
}, nil)

var degreeSchema = arrow.NewSchema([]arrow.Field{
	{Name: "node", Type: arrow.BinaryTypes.String},
	{Name: "neuron_id", Type: arrow.BinaryTypes.String},
	{Name: "in_degree", Type: arrow.PrimitiveTypes.Int64},
	{Name: "out_degree", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// nodeError classifies a node's answer: refusals of the request itself
// are not retried.
func nodeError(node string, err error) error {
	if p2p.IsCode(err, p2p.CodeInvalid) || p2p.IsCode(err, p2p.CodeNotFound) || p2p.IsCode(err, p2p.CodeUnauthorized) {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %v", node, err), ErrTypeInvalid, err)
	}
	return fmt.Errorf("%s: %w", node, err)
}

// nodeGraph pulls the node's synapses (pre, post) over Flight and counts
// each neuron's in and out degree.
func (a *Jobs) nodeGraph(ctx context.Context, p NodeAnalysisParams, rows *atomic.Int64) (arrow.RecordBatch, error) {
	rd, done, err := a.readFlight(ctx, p.Node, &fedpb.FlightQuery{Table: "synapse", Columns: []string{"pre_id", "post_id"},
		DatasetIds: p.Spec.DatasetIDs})
	if err != nil {
		return nil, err
	}
	defer done()
	type degrees struct{ in, out int64 }
	deg := map[uuid.UUID]*degrees{}
	get := func(id uuid.UUID) *degrees {
		d := deg[id]
		if d == nil {
			d = &degrees{}
			deg[id] = d
		}
		return d
	}
	for rd.Next() {
		rec := rd.RecordBatch()
		pre, err := uuidColumn(rec.Column(0))
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalid, err)
		}
		post, err := uuidColumn(rec.Column(1))
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalid, err)
		}
		for i := range int(rec.NumRows()) {
			if pre.IsValid(i) {
				get(uuid.UUID(pre.Value(i))).out++
			}
			if post.IsValid(i) {
				get(uuid.UUID(post.Value(i))).in++
			}
		}
		rows.Add(rec.NumRows())
	}
	if err := rd.Err(); err != nil {
		return nil, fmt.Errorf("%s: read synapses: %w", p.Node.Name, err)
	}
	ids := make([]uuid.UUID, 0, len(deg))
	for id := range deg {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y uuid.UUID) int { return strings.Compare(x.String(), y.String()) })
	b := array.NewRecordBuilder(memory.DefaultAllocator, degreeSchema)
	defer b.Release()
	for _, id := range ids {
		b.Field(0).(*array.StringBuilder).Append(p.Node.Name)
		b.Field(1).(*array.StringBuilder).Append(id.String())
		b.Field(2).(*array.Int64Builder).Append(deg[id].in)
		b.Field(3).(*array.Int64Builder).Append(deg[id].out)
	}
	return b.NewRecordBatch(), nil
}

// uuidColumn returns the 16-byte values of a UUID column (the arrow.uuid
// extension, or its FixedSizeBinary(16) storage).
func uuidColumn(a arrow.Array) (*array.FixedSizeBinary, error) {
	if ext, ok := a.(array.ExtensionArray); ok {
		a = ext.Storage()
	}
	fsb, ok := a.(*array.FixedSizeBinary)
	if !ok || fsb.DataType().(*arrow.FixedSizeBinaryType).ByteWidth != 16 {
		return nil, fmt.Errorf("column of type %s is not a UUID", a.DataType())
	}
	return fsb, nil
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
	info, err := a.s3.FPutObject(ctx, a.bucket, object, f.Name(), minio.PutObjectOptions{ContentType: "application/vnd.apache.parquet"})
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
	if err := a.s3.FGetObject(ctx, a.bucket, object, path, minio.GetObjectOptions{}); err != nil {
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

// MergeParams is the input of MergeJob.
type MergeParams struct {
	JobID string        `json:"job_id"`
	Spec  AnalyticsSpec `json:"spec"`
	Parts []NodePart    `json:"parts"`
}

// MergeResult is the merged result: a Parquet object and a JSON summary
// small enough for the job's row.
type MergeResult struct {
	Object  string          `json:"object"`
	Rows    int64           `json:"rows"`
	Bytes   int64           `json:"bytes"`
	Summary json.RawMessage `json:"summary"`
}

// DatasetStats are the merged statistics of one dataset (or of all).
type DatasetStats struct {
	Node      string    `json:"node,omitempty"`
	DatasetID string    `json:"dataset_id,omitempty"`
	Count     uint64    `json:"count"`
	Mean      float64   `json:"mean"`
	Stddev    float64   `json:"stddev"`
	Min       float64   `json:"min"`
	Max       float64   `json:"max"`
	Quantiles []float64 `json:"quantiles,omitempty"`
}

// SummaryResult is the JSON summary of a summary job.
type SummaryResult struct {
	Table     string         `json:"table"`
	Column    string         `json:"column"`
	Quantiles []float64      `json:"quantile_levels,omitempty"`
	Datasets  []DatasetStats `json:"datasets"`
	// Overall is exact for count, mean, stddev, min and max (merged from
	// each dataset's sums); quantiles are per dataset only.
	Overall DatasetStats `json:"overall"`
}

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
func (a *Jobs) MergeJob(ctx context.Context, p MergeParams) (MergeResult, error) {
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
			return MergeResult{}, err
		}
		tables = append(tables, t)
	}
	schema := summarySchema
	if p.Spec.Analysis == AnalysisSynapseGraph {
		schema = degreeSchema
	}
	merged, err := concat(schema, tables)
	if err != nil {
		return MergeResult{}, err
	}
	defer merged.Release()
	var summary any
	switch p.Spec.Analysis {
	case AnalysisSummary:
		summary = mergeSummary(p.Spec, merged)
	default:
		summary = mergeGraph(merged)
	}
	raw, err := json.Marshal(summary)
	if err != nil {
		return MergeResult{}, fmt.Errorf("encode summary: %w", err)
	}
	object := fmt.Sprintf("jobs/%s/result.parquet", p.JobID)
	size, err := a.putParquet(ctx, object, merged)
	if err != nil {
		return MergeResult{}, err
	}
	return MergeResult{Object: object, Rows: merged.NumRows(), Bytes: size, Summary: raw}, nil
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

func mergeSummary(spec AnalyticsSpec, rec arrow.RecordBatch) SummaryResult {
	out := SummaryResult{Table: spec.Table, Column: spec.Column, Quantiles: spec.Quantiles, Datasets: []DatasetStats{}}
	nodes := rec.Column(0).(*array.String)
	ids := rec.Column(1).(*array.String)
	counts := rec.Column(2).(*array.Uint64)
	f := func(i int) *array.Float64 { return rec.Column(i).(*array.Float64) }
	sums, sumSq, means, sds, mins, maxs := f(3), f(4), f(5), f(6), f(7), f(8)
	qs := rec.Column(9).(*array.List)
	qv := qs.ListValues().(*array.Float64)
	var n uint64
	var sum, sq float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range int(rec.NumRows()) {
		d := DatasetStats{Node: nodes.Value(i), DatasetID: ids.Value(i), Count: counts.Value(i), Mean: means.Value(i),
			Stddev: sds.Value(i), Min: mins.Value(i), Max: maxs.Value(i), Quantiles: []float64{}}
		start, end := qs.ValueOffsets(i)
		for j := start; j < end; j++ {
			d.Quantiles = append(d.Quantiles, qv.Value(int(j)))
		}
		out.Datasets = append(out.Datasets, d)
		if d.Count == 0 {
			continue
		}
		n += d.Count
		sum += sums.Value(i)
		sq += sumSq.Value(i)
		lo, hi = math.Min(lo, d.Min), math.Max(hi, d.Max)
	}
	out.Overall = DatasetStats{Count: n}
	if n > 0 {
		mean := sum / float64(n)
		out.Overall.Mean = mean
		out.Overall.Stddev = math.Sqrt(math.Max(0, sq/float64(n)-mean*mean))
		out.Overall.Min, out.Overall.Max = lo, hi
	}
	return out
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

// FinishParams is the input of FinishJob.
type FinishParams struct {
	JobID        string          `json:"job_id"`
	State        string          `json:"state"`
	Nodes        json.RawMessage `json:"nodes"`
	Result       json.RawMessage `json:"result,omitempty"`
	ResultObject string          `json:"result_object,omitempty"`
	Error        string          `json:"error,omitempty"`
}

// FinishJob records how the job ended.
func (a *Jobs) FinishJob(ctx context.Context, p FinishParams) error {
	id, err := uuid.Parse(p.JobID)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("bad job ID", ErrTypeInvalid, err)
	}
	if !slices.Contains(store.JobStates, p.State) {
		return temporal.NewNonRetryableApplicationError("bad job state "+p.State, ErrTypeInvalid, nil)
	}
	a.log.Info("job finished", "job", p.JobID, "state", p.State, "err", p.Error)
	return a.store.FinishJob(ctx, id, store.JobOutcome{State: p.State, Nodes: p.Nodes, Result: p.Result,
		ResultObject: p.ResultObject, Error: p.Error})
}
