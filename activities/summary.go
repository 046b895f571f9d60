package activities

import (
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/syndb/federation/internal/domain"
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
