package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/wire"
)

// NodeAnalysis runs the analysis on one node and stores its part in S3.
// Both read the node's Flight server with a ticket from GetFlightEndpoint:
// a summary is computed by the node's ClickHouse and offered there; the
// synapse graph is pulled as rows and its degrees computed here, batch by
// batch. It
// heartbeats its progress, so a cancelled job stops it promptly.
func (a *Jobs) NodeAnalysis(ctx context.Context, p domain.NodeAnalysisParams) (domain.NodePart, error) {
	started := time.Now()
	var rows atomic.Int64
	stop := heartbeat(ctx, func() any { return map[string]any{"node": p.Node.Name, "rows": rows.Load()} })
	defer stop()
	var (
		rec arrow.RecordBatch
		err error
	)
	switch p.Spec.Analysis {
	case domain.AnalysisSummary:
		rec, err = a.nodeSummary(ctx, p)
	case domain.AnalysisSynapseGraph:
		rec, err = a.nodeGraph(ctx, p, &rows)
	default:
		return domain.NodePart{}, temporal.NewNonRetryableApplicationError("unknown analysis "+p.Spec.Analysis, domain.ErrTypeInvalid, nil)
	}
	if err != nil {
		return domain.NodePart{}, err
	}
	defer rec.Release()
	object := fmt.Sprintf("jobs/%s/parts/%s.parquet", p.JobID, p.Node.Name)
	size, err := a.putParquet(ctx, object, rec)
	if err != nil {
		return domain.NodePart{}, err
	}
	part := domain.NodePart{Node: p.Node.Name, Object: object, Rows: rec.NumRows(), Bytes: size, DurationMS: time.Since(started).Milliseconds()}
	activity.GetLogger(ctx).Info("node part stored", "node", p.Node.Name, "rows", part.Rows, "bytes", size, "took", time.Since(started))
	return part, nil
}

var degreeSchema = arrow.NewSchema([]arrow.Field{
	{Name: "node", Type: arrow.BinaryTypes.String},
	{Name: "neuron_id", Type: arrow.BinaryTypes.String},
	{Name: "in_degree", Type: arrow.PrimitiveTypes.Int64},
	{Name: "out_degree", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// nodeGraph pulls the node's synapses (pre, post) over Flight and counts
// each neuron's in and out degree.
func (a *Jobs) nodeGraph(ctx context.Context, p domain.NodeAnalysisParams, rows *atomic.Int64) (arrow.RecordBatch, error) {
	rd, done, err := a.flight.read(ctx, p.Node, &wire.FlightQuery{Table: "synapse", Columns: []string{"pre_id", "post_id"},
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
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), domain.ErrTypeInvalid, err)
		}
		post, err := uuidColumn(rec.Column(1))
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), domain.ErrTypeInvalid, err)
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
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			return nil, err // already says which node, and whether to retry
		}
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
