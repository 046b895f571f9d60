package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/workflows"
)

// benchFleet stands in for the hub's benchmark activities: each node is
// measured ("ok"), has its activity fail ("down"), or answers pings but
// not the aggregate ("no-sql"). Recorded rows are kept by node and kind.
type benchFleet struct {
	nodes    []domain.NodeRef
	behavior map[string]string

	mu       sync.Mutex
	calls    map[string]int
	actIDs   map[string]string
	batches  []int
	rows     map[string]domain.Benchmark // node/kind → row
	runIDs   map[string]bool
	inflight atomic.Int32
	maxSeen  atomic.Int32
}

func newBenchFleet(n int) *benchFleet {
	f := &benchFleet{behavior: map[string]string{}, calls: map[string]int{}, actIDs: map[string]string{},
		rows: map[string]domain.Benchmark{}, runIDs: map[string]bool{}}
	for i := range n {
		name := fmt.Sprintf("lab-%03d", i)
		f.nodes = append(f.nodes, domain.NodeRef{Name: name, PeerID: "peer-" + name})
		f.behavior[name] = "ok"
	}
	return f
}

var benchAt = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func (f *benchFleet) measure(ctx context.Context, p domain.BenchmarkNodeParams) (domain.BenchmarkNodeResult, error) {
	now := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		seen := f.maxSeen.Load()
		if now <= seen || f.maxSeen.CompareAndSwap(seen, now) {
			break
		}
	}
	name := p.Node.Name
	f.mu.Lock()
	f.calls[name]++
	f.actIDs[name] = activity.GetInfo(ctx).ActivityID
	f.mu.Unlock()
	ok := func(k domain.BenchmarkKind, v float64) domain.BenchmarkFigure {
		return domain.BenchmarkFigure{Kind: k, Value: v, OK: true, Path: "relayed", MeasuredAt: benchAt}
	}
	switch f.behavior[name] {
	case "down":
		return domain.BenchmarkNodeResult{}, errors.New("dial backoff: no route to " + name)
	case "no-sql":
		return domain.BenchmarkNodeResult{Figures: []domain.BenchmarkFigure{ok(domain.BenchmarkPing, 0.5),
			domain.FailedFigure(domain.BenchmarkAggregate, "stream reset", benchAt), ok(domain.BenchmarkFlightRows, 1e6),
			ok(domain.BenchmarkFlightBytes, 40)}}, nil
	}
	return domain.BenchmarkNodeResult{Figures: []domain.BenchmarkFigure{ok(domain.BenchmarkPing, 0.5), ok(domain.BenchmarkAggregate, 3),
		ok(domain.BenchmarkFlightRows, 1e6), ok(domain.BenchmarkFlightBytes, 40)}}, nil
}

func (f *benchFleet) record(ctx context.Context, p domain.RecordBenchmarksParams) (domain.RecordBenchmarksResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, len(p.Rows))
	f.runIDs[activity.GetInfo(ctx).WorkflowExecution.RunID] = true
	for _, r := range p.Rows {
		key := r.Node + "/" + string(r.Kind)
		if _, dup := f.rows[key]; dup {
			return domain.RecordBenchmarksResult{}, fmt.Errorf("%s recorded twice", key)
		}
		f.rows[key] = r
	}
	return domain.RecordBenchmarksResult{Recorded: len(p.Rows)}, nil
}

func runBenchmark(t *testing.T, f *benchFleet, p workflows.NodeBenchmarkParams) workflows.NodeBenchmarkResult {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.NodeBenchmark, workflow.RegisterOptions{Name: workflows.NodeBenchmarkName})
	env.RegisterActivityWithOptions(func(context.Context) ([]domain.NodeRef, error) { return f.nodes, nil },
		activity.RegisterOptions{Name: domain.ListSyncTargetsName})
	env.RegisterActivityWithOptions(f.measure, activity.RegisterOptions{Name: domain.BenchmarkNodeName})
	env.RegisterActivityWithOptions(f.record, activity.RegisterOptions{Name: domain.RecordBenchmarksName})
	env.ExecuteWorkflow(workflows.NodeBenchmarkName, p)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res workflows.NodeBenchmarkResult
	require.NoError(t, env.GetWorkflowResult(&res))
	return res
}

// TestNodeBenchmarkRowPerNodeAndKind: every node is its own activity and
// gets one row per kind, with its values, path and time.
func TestNodeBenchmarkRowPerNodeAndKind(t *testing.T) {
	t.Parallel()
	f := newBenchFleet(3)
	res := runBenchmark(t, f, workflows.NodeBenchmarkParams{})
	require.Equal(t, 3, res.Measured)
	require.Zero(t, res.Failed)
	require.Equal(t, 12, res.Recorded)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.rows, 12)
	for _, n := range f.nodes {
		for _, k := range domain.BenchmarkKinds {
			r, ok := f.rows[n.Name+"/"+string(k)]
			require.True(t, ok, "%s %s", n.Name, k)
			require.True(t, r.OK)
			require.NotNil(t, r.Value)
			require.Equal(t, "relayed", r.Path)
			require.Equal(t, benchAt, r.MeasuredAt)
		}
		require.InDelta(t, 3, *f.rows[n.Name+"/aggregate"].Value, 0)
		require.Equal(t, "benchmark-"+n.Name, f.actIDs[n.Name])
	}
	require.Len(t, f.runIDs, 1, "every batch of one run")
	require.Equal(t, []workflows.BenchmarkedNode{
		{Name: "lab-000", Status: workflows.NodeMeasured, Path: "relayed", Values: map[domain.BenchmarkKind]float64{
			domain.BenchmarkPing: 0.5, domain.BenchmarkAggregate: 3, domain.BenchmarkFlightRows: 1e6, domain.BenchmarkFlightBytes: 40}},
	}, res.Nodes[:1])
}

// TestNodeBenchmarkFailedNodeRecorded: a node whose activity fails is
// recorded as failed in every kind with the reason, not skipped, and is
// not retried; a kind that fails on an answering node fails alone.
func TestNodeBenchmarkFailedNodeRecorded(t *testing.T) {
	t.Parallel()
	f := newBenchFleet(3)
	f.behavior["lab-001"] = "down"
	f.behavior["lab-002"] = "no-sql"
	res := runBenchmark(t, f, workflows.NodeBenchmarkParams{})
	require.Equal(t, 1, res.Measured)
	require.Equal(t, 2, res.Failed)
	require.Equal(t, 12, res.Recorded)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, 1, f.calls["lab-001"], "a benchmark is not retried")
	for _, k := range domain.BenchmarkKinds {
		r := f.rows["lab-001/"+string(k)]
		require.Equal(t, "lab-001", r.Node, k)
		require.False(t, r.OK, k)
		require.Nil(t, r.Value, k)
		require.Contains(t, r.Error, "no route to lab-001", k)
	}
	agg := f.rows["lab-002/aggregate"]
	require.False(t, agg.OK)
	require.Equal(t, "stream reset", agg.Error)
	require.True(t, f.rows["lab-002/ping"].OK)
	require.True(t, f.rows["lab-000/aggregate"].OK)

	require.Equal(t, workflows.NodeFailed, res.Nodes[1].Status)
	require.Contains(t, res.Nodes[1].Errors[domain.BenchmarkAggregate], "no route")
	require.Empty(t, res.Nodes[1].Values)
	require.Equal(t, workflows.NodeFailed, res.Nodes[2].Status)
	require.Equal(t, map[domain.BenchmarkKind]string{domain.BenchmarkAggregate: "stream reset"}, res.Nodes[2].Errors)
}

// TestNodeBenchmarkBatchesAndBounds: 250 nodes, at most 5 at once, their
// rows written in batches of 100 nodes.
func TestNodeBenchmarkBatchesAndBounds(t *testing.T) {
	t.Parallel()
	f := newBenchFleet(250)
	res := runBenchmark(t, f, workflows.NodeBenchmarkParams{Concurrency: 5})
	require.Equal(t, 250, res.Measured)
	require.Equal(t, 1000, res.Recorded)
	require.LessOrEqual(t, f.maxSeen.Load(), int32(5))
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, []int{400, 400, 200}, f.batches)
	require.Len(t, f.rows, 1000)
}

func TestNodeBenchmarkNoNodes(t *testing.T) {
	t.Parallel()
	f := newBenchFleet(0)
	res := runBenchmark(t, f, workflows.NodeBenchmarkParams{})
	require.Empty(t, res.Nodes)
	require.Zero(t, res.Recorded)
	require.Empty(t, f.batches)
}
