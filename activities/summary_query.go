package activities

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// nodeSummary asks the node for the summary with AnalyticsQuery: the
// node's ClickHouse computes it, and the reply carries it, one row per
// dataset (a summary is small; Flight is for bulk).
func (a *Jobs) nodeSummary(ctx context.Context, p domain.NodeAnalysisParams) (arrow.RecordBatch, error) {
	req := &wire.AnalyticsQueryRequest{JobId: p.JobID, Kind: wire.KindSummary, Table: p.Spec.Table, Column: p.Spec.Column,
		DatasetIds: p.Spec.DatasetIDs, Quantiles: p.Spec.Quantiles}
	var resp wire.AnalyticsQueryResponse
	if err := a.flight.nodes.Call(ctx, p.Node.PeerID, p.Node.Addrs, p2p.AnalyticsQuery, req, &resp); err != nil {
		return nil, classify(fmt.Errorf("%s: summary: %w", p.Node.Name, err))
	}
	if resp.GetNode() != p.Node.Name || resp.GetJobId() != p.JobID {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s answered the summary of job %s as node %q for job %q",
			p.Node.Name, p.JobID, resp.GetNode(), resp.GetJobId()), domain.ErrTypeInvalid, nil)
	}
	return summaryRecord(p.Node.Name, resp.GetSummaries()), nil
}

// summaryRecord is node's summaries as a record batch of summarySchema.
func summaryRecord(node string, summaries []*wire.Summary) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, summarySchema)
	defer b.Release()
	for _, s := range summaries {
		b.Field(0).(*array.StringBuilder).Append(node)
		b.Field(1).(*array.StringBuilder).Append(s.GetDatasetId())
		b.Field(2).(*array.Uint64Builder).Append(s.GetCount())
		for i, v := range []float64{s.GetSum(), s.GetSumSquares(), s.GetMean(), s.GetStddev(), s.GetMin(), s.GetMax()} {
			b.Field(3 + i).(*array.Float64Builder).Append(v)
		}
		lb := b.Field(9).(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.Float64Builder).AppendValues(s.GetQuantiles(), nil)
	}
	return b.NewRecordBatch()
}
