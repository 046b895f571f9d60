package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"google.golang.org/protobuf/proto"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// summaryNodes answer AnalyticsQuery with each node's summaries, by peer
// ID, and nothing else: they have no Flight server to offer.
type summaryNodes struct {
	replies map[string]*wire.AnalyticsQueryResponse

	mu   sync.Mutex
	sent []*wire.AnalyticsQueryRequest
}

func (n *summaryNodes) Call(_ context.Context, peerID string, _ []string, spec p2p.Spec, req, resp proto.Message) error {
	if spec.ID != p2p.AnalyticsQuery.ID {
		return fmt.Errorf("%s: no Flight here", spec.ID)
	}
	n.mu.Lock()
	n.sent = append(n.sent, req.(*wire.AnalyticsQueryRequest))
	n.mu.Unlock()
	r, ok := n.replies[peerID]
	if !ok {
		return p2p.ErrUnreachable
	}
	proto.Merge(resp, r)
	return nil
}

// memS3 keeps objects in memory.
type memS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
}

func (s *memS3) FPutObject(_ context.Context, _, object, path string, _ minio.PutObjectOptions) (minio.UploadInfo, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return minio.UploadInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[object] = b
	return minio.UploadInfo{Key: object, Size: int64(len(b))}, nil
}

func (s *memS3) FGetObject(_ context.Context, _, object, path string, _ minio.GetObjectOptions) error {
	s.mu.Lock()
	b, ok := s.objects[object]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("no object %s", object)
	}
	return os.WriteFile(path, b, 0o600)
}

func (s *memS3) GetObject(context.Context, string, string, minio.GetObjectOptions) (*minio.Object, error) {
	return nil, errors.New("not used by analytics")
}

func (s *memS3) RemoveObject(context.Context, string, string, minio.RemoveObjectOptions) error {
	return errors.New("not used by analytics")
}

func (s *memS3) StatObject(context.Context, string, string, minio.StatObjectOptions) (minio.ObjectInfo, error) {
	return minio.ObjectInfo{}, errors.New("not used by analytics")
}

// TestSummaryOverAnalyticsQuery: each node's part of a summary job is its
// AnalyticsQuery reply (no Flight endpoint is asked for), and the merge
// across nodes is exact. By hand: lab-a's dataset holds 1, 2, 3, 4 and
// lab-b's holds 10, so overall n 5, mean 20/5 = 4, and the squared
// deviations 9, 4, 1, 0, 36 sum to 50: stddev sqrt(50/5) = sqrt(10).
func TestSummaryOverAnalyticsQuery(t *testing.T) {
	dsA, dsB := uuid.NewString(), uuid.NewString()
	jobID := uuid.NewString()
	nodes := &summaryNodes{replies: map[string]*wire.AnalyticsQueryResponse{
		"peer-a": {JobId: jobID, Node: "lab-a", Summaries: []*wire.Summary{{DatasetId: dsA, Count: 4, Sum: 10, SumSquares: 30,
			Mean: 2.5, Stddev: math.Sqrt(1.25), Min: 1, Max: 4, Quantiles: []float64{2.5, 3.7}}}},
		"peer-b": {JobId: jobID, Node: "lab-b", Summaries: []*wire.Summary{{DatasetId: dsB, Count: 1, Sum: 10, SumSquares: 100,
			Mean: 10, Stddev: 0, Min: 10, Max: 10, Quantiles: []float64{10, 10}}}},
		"peer-x": {JobId: jobID, Node: "lab-y"},
	}}
	jobs := activities.NewJobs(activities.JobsDeps{Nodes: nodes, Results: &memS3{objects: map[string][]byte{}}, Bucket: "results", Log: slog.New(slog.DiscardHandler)})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(jobs.NodeAnalysis, activity.RegisterOptions{Name: domain.NodeAnalysisName})
	env.RegisterActivityWithOptions(jobs.MergeJob, activity.RegisterOptions{Name: domain.MergeJobName})
	spec := domain.AnalyticsSpec{Analysis: domain.AnalysisSummary, Table: "neuron", Column: "voxel_volume",
		Quantiles: []float64{0.5, 0.9}, DatasetIDs: []string{dsA, dsB}}

	var parts []domain.NodePart
	for _, n := range []domain.NodeRef{{Name: "lab-a", PeerID: "peer-a"}, {Name: "lab-b", PeerID: "peer-b"}} {
		v, err := env.ExecuteActivity(domain.NodeAnalysisName, domain.NodeAnalysisParams{JobID: jobID, Node: n, Spec: spec})
		require.NoError(t, err)
		var part domain.NodePart
		require.NoError(t, v.Get(&part))
		require.Equal(t, int64(1), part.Rows, "one dataset")
		parts = append(parts, part)
	}
	require.Len(t, nodes.sent, 2)
	for _, req := range nodes.sent {
		require.Equal(t, &wire.AnalyticsQueryRequest{JobId: jobID, Kind: wire.KindSummary, Table: "neuron", Column: "voxel_volume",
			DatasetIds: []string{dsA, dsB}, Quantiles: []float64{0.5, 0.9}}, req)
	}

	v, err := env.ExecuteActivity(domain.MergeJobName, domain.MergeParams{JobID: jobID, Spec: spec, Parts: parts})
	require.NoError(t, err)
	var merged domain.MergeResult
	require.NoError(t, v.Get(&merged))
	var res activities.SummaryResult
	require.NoError(t, json.Unmarshal(merged.Summary, &res))
	require.Equal(t, []activities.DatasetStats{
		{Node: "lab-a", DatasetID: dsA, Count: 4, Mean: 2.5, Stddev: math.Sqrt(1.25), Min: 1, Max: 4, Quantiles: []float64{2.5, 3.7}},
		{Node: "lab-b", DatasetID: dsB, Count: 1, Mean: 10, Stddev: 0, Min: 10, Max: 10, Quantiles: []float64{10, 10}},
	}, res.Datasets)
	require.Equal(t, uint64(5), res.Overall.Count)
	require.InDelta(t, 4, res.Overall.Mean, 1e-12)
	require.InDelta(t, math.Sqrt(10), res.Overall.Stddev, 1e-12)
	require.InDelta(t, 1, res.Overall.Min, 0)
	require.InDelta(t, 10, res.Overall.Max, 0)

	t.Run("a reply as another node", func(t *testing.T) {
		_, err := env.ExecuteActivity(domain.NodeAnalysisName,
			domain.NodeAnalysisParams{JobID: jobID, Node: domain.NodeRef{Name: "lab-x", PeerID: "peer-x"}, Spec: spec})
		require.ErrorContains(t, err, `as node "lab-y"`)
	})
}

// TestSummaryRequestFitsCap: the largest summary a job spec may ask for
// (1000 dataset IDs, 16 quantile levels) fits the AnalyticsQuery request
// cap, and passes its validation.
func TestSummaryRequestFitsCap(t *testing.T) {
	req := &wire.AnalyticsQueryRequest{JobId: uuid.NewString(), Kind: wire.KindSummary,
		Table: "neuron", Column: "voxel_volume", Quantiles: make([]float64, wire.MaxQuantiles)}
	for i := range req.Quantiles {
		req.Quantiles[i] = float64(i+1) / float64(wire.MaxQuantiles+1)
	}
	for range 1000 {
		req.DatasetIds = append(req.DatasetIds, uuid.NewString())
	}
	spec := domain.AnalyticsSpec{Analysis: domain.AnalysisSummary, Table: req.Table, Column: req.Column,
		Quantiles: req.Quantiles, DatasetIDs: req.DatasetIds}
	require.NoError(t, spec.Validate(map[string]map[string]int{"neuron": {"voxel_volume": 1}}))
	require.NoError(t, req.Validate())
	require.Less(t, proto.Size(req), p2p.AnalyticsQuery.MaxRequest)
}
