package activities

import (
	"context"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/fedpb"
)

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

// nodeSummary has the node compute the summary on its ClickHouse and
// offer it over its Flight server, and reads it from there.
func (a *Jobs) nodeSummary(ctx context.Context, p domain.NodeAnalysisParams) (arrow.RecordBatch, error) {
	rd, done, err := a.flight.read(ctx, p.Node, &fedpb.FlightQuery{Table: p.Spec.Table, SummaryOf: p.Spec.Column,
		Quantiles: p.Spec.Quantiles, DatasetIds: p.Spec.DatasetIDs})
	if err != nil {
		return nil, err
	}
	defer done()
	b := array.NewRecordBuilder(memory.DefaultAllocator, summarySchema)
	defer b.Release()
	for rd.Next() {
		rec := rd.RecordBatch()
		if rec.NumCols() != 9 {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: a summary has 9 columns, got %d", p.Node.Name, rec.NumCols()), domain.ErrTypeInvalid, nil)
		}
		ids, okID := rec.Column(0).(*array.String)
		counts, okN := rec.Column(1).(*array.Uint64)
		qs, okQ := rec.Column(8).(*array.List)
		if !okID || !okN || !okQ {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: unexpected summary types %s", p.Node.Name, rec.Schema()), domain.ErrTypeInvalid, nil)
		}
		qv, _ := qs.ListValues().(*array.Float64)
		for i := range int(rec.NumRows()) {
			b.Field(0).(*array.StringBuilder).Append(p.Node.Name)
			b.Field(1).(*array.StringBuilder).Append(ids.Value(i))
			b.Field(2).(*array.Uint64Builder).Append(counts.Value(i))
			for c := 2; c <= 7; c++ {
				f, ok := rec.Column(c).(*array.Float64)
				if !ok {
					return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: summary column %d is %s", p.Node.Name, c, rec.Column(c).DataType()), domain.ErrTypeInvalid, nil)
				}
				b.Field(c + 1).(*array.Float64Builder).Append(f.Value(i))
			}
			lb := b.Field(9).(*array.ListBuilder)
			lb.Append(true)
			start, end := qs.ValueOffsets(i)
			for j := start; j < end && qv != nil; j++ {
				lb.ValueBuilder().(*array.Float64Builder).Append(qv.Value(int(j)))
			}
		}
	}
	if err := rd.Err(); err != nil {
		return nil, fmt.Errorf("%s: read summary: %w", p.Node.Name, err)
	}
	return b.NewRecordBatch(), nil
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

func mergeSummary(spec domain.AnalyticsSpec, rec arrow.RecordBatch) SummaryResult {
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
