package nodeagent

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// createSummaryTable creates table "measures": dataset A holds 1, 2, 3, 4
// and a NULL, dataset B holds 10.
func createSummaryTable(t *testing.T, db string) {
	t.Helper()
	conn := openDB(t, db)
	require.NoError(t, conn.Exec(t.Context(), "DROP TABLE IF EXISTS measures"))
	require.NoError(t, conn.Exec(t.Context(),
		"CREATE TABLE measures (dataset_id UUID, n UInt32, v Nullable(Float64), label String) ENGINE = MergeTree() ORDER BY (dataset_id, n)"))
	// INSERT … SELECT: an INSERT … VALUES through Exec hangs on 18.16.
	require.NoError(t, conn.Exec(t.Context(), "INSERT INTO measures (dataset_id, n, v, label) "+
		"SELECT toUUID('"+dsA.String()+"'), toUInt32(number + 1), nullIf(toFloat64(number + 1), 5), 'a' FROM system.numbers LIMIT 5"))
	require.NoError(t, conn.Exec(t.Context(), "INSERT INTO measures (dataset_id, n, v, label) "+
		"SELECT toUUID('"+dsB.String()+"'), toUInt32(1), toNullable(toFloat64(10)), 'b'"))
}

// TestAnalyticsQuerySummary: the node answers AnalyticsQuery over libp2p
// with each dataset's summary, as computed by hand: dataset A is 1, 2, 3, 4
// (the NULL left out), so n 4, sum 10, sum of squares 30, mean 2.5,
// population stddev sqrt(30/4 - 2.5²) = sqrt(1.25), and its quantiles
// interpolate between neighbours (0.5 → 2.5, 0.9 → 3 + 0.7 = 3.7).
func TestAnalyticsQuerySummary(t *testing.T) {
	t.Parallel()
	f := startAgent(t, "lab-summary", "analytics_summary")
	createSummaryTable(t, f.db)
	call := func(req *wire.AnalyticsQueryRequest) (*wire.AnalyticsQueryResponse, error) {
		var resp wire.AnalyticsQueryResponse
		err := p2p.Call(t.Context(), f.hub, f.agent.PeerID(), p2p.AnalyticsQuery, req, &resp)
		return &resp, err
	}

	resp, err := call(&wire.AnalyticsQueryRequest{JobId: "j1", Kind: wire.KindSummary, Table: "measures", Column: "v",
		Quantiles: []float64{0.5, 0.9}})
	require.NoError(t, err)
	require.Equal(t, "j1", resp.GetJobId())
	require.Equal(t, "lab-summary", resp.GetNode())
	require.Len(t, resp.GetSummaries(), 2)
	a, b := resp.GetSummaries()[0], resp.GetSummaries()[1]
	require.Equal(t, dsA.String(), a.GetDatasetId())
	require.Equal(t, uint64(4), a.GetCount())
	require.InDelta(t, 10, a.GetSum(), 0)
	require.InDelta(t, 30, a.GetSumSquares(), 0)
	require.InDelta(t, 2.5, a.GetMean(), 1e-12)
	require.InDelta(t, math.Sqrt(1.25), a.GetStddev(), 1e-12)
	require.InDelta(t, 1, a.GetMin(), 0)
	require.InDelta(t, 4, a.GetMax(), 0)
	require.InDeltaSlice(t, []float64{2.5, 3.7}, a.GetQuantiles(), 1e-12)
	require.Equal(t, dsB.String(), b.GetDatasetId())
	require.Equal(t, uint64(1), b.GetCount())
	require.InDelta(t, 10, b.GetMean(), 0)
	require.InDelta(t, 0, b.GetStddev(), 0)
	require.InDeltaSlice(t, []float64{10, 10}, b.GetQuantiles(), 0)

	t.Run("datasets", func(t *testing.T) {
		resp, err := call(&wire.AnalyticsQueryRequest{Kind: wire.KindSummary, Table: "measures", Column: "v",
			DatasetIds: []string{dsB.String()}})
		require.NoError(t, err)
		require.Len(t, resp.GetSummaries(), 1)
		require.Equal(t, dsB.String(), resp.GetSummaries()[0].GetDatasetId())
		require.Len(t, resp.GetSummaries()[0].GetQuantiles(), len(defaultQuantiles), "the default levels")
	})
	t.Run("refusals", func(t *testing.T) {
		_, err := call(&wire.AnalyticsQueryRequest{Kind: wire.KindSummary, Table: "measures", Column: "label"})
		require.True(t, p2p.IsCode(err, p2p.CodeInvalid), "%v", err)
		require.ErrorContains(t, err, "not numeric")
		_, err = call(&wire.AnalyticsQueryRequest{Kind: wire.KindSummary, Table: "nothing", Column: "v"})
		require.True(t, p2p.IsCode(err, p2p.CodeNotFound), "%v", err)
		// Levels as a job spec takes them, in (0, 1): refused before sending.
		_, err = call(&wire.AnalyticsQueryRequest{Kind: wire.KindSummary, Table: "measures", Column: "v", Quantiles: []float64{1}})
		require.ErrorContains(t, err, "outside (0, 1)")
	})
}

// TestSummaryDatasetCap: a summary of more datasets than a reply may hold
// is refused, not cut short.
func TestSummaryDatasetCap(t *testing.T) {
	t.Parallel()
	const db = "analytics_cap"
	createSummaryTable(t, db)
	conn := openDB(t, db)
	req := &wire.AnalyticsQueryRequest{Kind: wire.KindSummary, Table: "measures", Column: "v"}
	got, err := summarise(t.Context(), conn, "lab-cap", req, 2)
	require.NoError(t, err)
	require.Len(t, got, 2)
	_, err = summarise(t.Context(), conn, "lab-cap", req, 1)
	require.True(t, p2p.IsCode(err, p2p.CodeInvalid), "%v", err)
	require.ErrorContains(t, err, "more than 1 datasets")
}

// TestSummaryReplyFitsCap: the largest reply a node sends, maxSummaryDatasets
// summaries with wire.MaxQuantiles quantiles each, fits the AnalyticsQuery
// response cap.
func TestSummaryReplyFitsCap(t *testing.T) {
	t.Parallel()
	resp := &wire.AnalyticsQueryResponse{JobId: uuid.NewString(), Node: strings.Repeat("n", 63), Took: durationpb.New(time.Hour)}
	qs := make([]float64, wire.MaxQuantiles)
	for i := range qs {
		qs[i] = -math.MaxFloat64
	}
	for range maxSummaryDatasets {
		resp.Summaries = append(resp.Summaries, &wire.Summary{DatasetId: uuid.NewString(), Count: math.MaxUint64,
			Sum: -math.MaxFloat64, SumSquares: math.MaxFloat64, Mean: -math.MaxFloat64, Stddev: math.MaxFloat64,
			Min: -math.MaxFloat64, Max: math.MaxFloat64, Quantiles: qs})
	}
	size := proto.Size(resp)
	t.Logf("largest summary reply: %d bytes of %d", size, p2p.AnalyticsQuery.MaxResponse)
	require.Less(t, size, p2p.AnalyticsQuery.MaxResponse)
}
