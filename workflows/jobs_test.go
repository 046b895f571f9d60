package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/workflows"
)

// fakeJobs stands in for the job activities: nodes answer per behavior.
type fakeJobs struct {
	mu       sync.Mutex
	nodes    []string
	excluded []domain.Exclusion
	behavior map[string]string // "ok" | "down" | "slow"
	calls    map[string]int
	finished domain.FinishParams
	merged   int
}

func newJobs(nodes ...string) *fakeJobs {
	f := &fakeJobs{nodes: nodes, behavior: map[string]string{}, calls: map[string]int{}}
	for _, n := range nodes {
		f.behavior[n] = "ok"
	}
	return f
}

func (f *fakeJobs) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterWorkflowWithOptions(workflows.AnalyticsJob, workflow.RegisterOptions{Name: workflows.AnalyticsJobName})
	env.RegisterActivityWithOptions(func(context.Context, domain.JobRef) error { return nil },
		activity.RegisterOptions{Name: domain.StartJobName})
	env.RegisterActivityWithOptions(func(context.Context, domain.JobTargetsParams) (domain.JobTargetsResult, error) {
		out := domain.JobTargetsResult{Excluded: f.excluded}
		for _, n := range f.nodes {
			out.Nodes = append(out.Nodes, domain.NodeRef{Name: n})
		}
		return out, nil
	}, activity.RegisterOptions{Name: domain.JobTargetsName})
	env.RegisterActivityWithOptions(func(ctx context.Context, p domain.NodeAnalysisParams) (domain.NodePart, error) {
		f.mu.Lock()
		f.calls[p.Node.Name]++
		b := f.behavior[p.Node.Name]
		f.mu.Unlock()
		switch b {
		case "down":
			return domain.NodePart{}, errors.New("peer unreachable")
		case "slow":
			<-ctx.Done()
			return domain.NodePart{}, ctx.Err()
		}
		return domain.NodePart{Node: p.Node.Name, Object: "jobs/x/parts/" + p.Node.Name, Rows: 3}, nil
	}, activity.RegisterOptions{Name: domain.NodeAnalysisName})
	env.RegisterActivityWithOptions(func(_ context.Context, p domain.MergeParams) (domain.MergeResult, error) {
		f.mu.Lock()
		f.merged = len(p.Parts)
		f.mu.Unlock()
		return domain.MergeResult{Object: "jobs/x/result.parquet", Summary: json.RawMessage(`{"ok":true}`)}, nil
	}, activity.RegisterOptions{Name: domain.MergeJobName})
	env.RegisterActivityWithOptions(func(_ context.Context, p domain.FinishParams) error {
		f.mu.Lock()
		f.finished = p
		f.mu.Unlock()
		return nil
	}, activity.RegisterOptions{Name: domain.FinishJobName})
}

func runJob(t *testing.T, f *fakeJobs, spec domain.AnalyticsSpec) (*testsuite.TestWorkflowEnvironment, domain.JobResult) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.register(env)
	env.ExecuteWorkflow(workflows.AnalyticsJobName, workflows.AnalyticsJobParams{JobID: "j", Spec: spec})
	require.True(t, env.IsWorkflowCompleted())
	var res domain.JobResult
	if env.GetWorkflowError() == nil {
		require.NoError(t, env.GetWorkflowResult(&res))
	}
	return env, res
}

var summarySpec = domain.AnalyticsSpec{Analysis: domain.AnalysisSummary, Table: "neuron", Column: "voxel_volume"}

func TestAnalyticsJobAllNodes(t *testing.T) {
	t.Parallel()
	f := newJobs("lab-a", "lab-b")
	_, res := runJob(t, f, summarySpec)
	require.Equal(t, domain.JobCompleted, res.State)
	require.Equal(t, 2, f.merged)
	require.Equal(t, domain.JobCompleted, f.finished.State)
	require.Equal(t, "jobs/x/result.parquet", f.finished.ResultObject)
}

func TestAnalyticsJobNodeDownIsPartial(t *testing.T) {
	t.Parallel()
	f := newJobs("lab-a", "lab-b")
	f.behavior["lab-b"] = "down"
	_, res := runJob(t, f, summarySpec)
	require.Equal(t, domain.JobPartial, res.State)
	require.Equal(t, 3, f.calls["lab-b"], "retried per its policy")
	require.Equal(t, 1, f.merged)
	nodes := f.finished.Nodes
	require.Equal(t, domain.JobNodeMissing, nodes[1].State)
	require.Contains(t, nodes[1].Error, "peer unreachable")
}

func TestAnalyticsJobRequireAll(t *testing.T) {
	t.Parallel()
	f := newJobs("lab-a", "lab-b")
	f.behavior["lab-b"] = "down"
	spec := summarySpec
	spec.RequireAll = true
	_, res := runJob(t, f, spec)
	require.Equal(t, domain.JobFailed, res.State)
	require.Contains(t, f.finished.Error, "requires every node")
	require.Zero(t, f.merged)

	// An excluded node fails it before any work.
	g := newJobs("lab-a")
	g.excluded = []domain.Exclusion{{Name: "lab-b", Reason: domain.ReasonUnreachable}}
	_, res = runJob(t, g, spec)
	require.Equal(t, domain.JobFailed, res.State)
	require.Zero(t, g.calls["lab-a"])
}

func TestAnalyticsJobExcludedNodeIsPartial(t *testing.T) {
	t.Parallel()
	f := newJobs("lab-a")
	f.excluded = []domain.Exclusion{{Name: "lab-b", Reason: domain.ReasonUnreachable}}
	_, res := runJob(t, f, summarySpec)
	require.Equal(t, domain.JobPartial, res.State)
	require.Len(t, res.Excluded, 1)
}

func TestAnalyticsJobNoNodes(t *testing.T) {
	t.Parallel()
	f := newJobs()
	_, res := runJob(t, f, summarySpec)
	require.Equal(t, domain.JobFailed, res.State)
	require.Contains(t, f.finished.Error, "no node can run this job")
}

func TestAnalyticsJobCancel(t *testing.T) {
	t.Parallel()
	f := newJobs("lab-a")
	f.behavior["lab-a"] = "slow"
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.register(env)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Second)
	env.ExecuteWorkflow(workflows.AnalyticsJobName, workflows.AnalyticsJobParams{JobID: "j", Spec: summarySpec})
	require.True(t, env.IsWorkflowCompleted())
	var canceled *temporal.CanceledError
	require.ErrorAs(t, env.GetWorkflowError(), &canceled)
	require.Equal(t, domain.JobCancelled, f.finished.State, "the cancellation is recorded")
}

// TestAnalyticsJobRecordsExcludedNodes: a node routing leaves out is in the
// job's recorded nodes, after the ones that ran, with the reason.
func TestAnalyticsJobRecordsExcludedNodes(t *testing.T) {
	t.Parallel()
	f := newJobs("lab-a")
	f.excluded = []domain.Exclusion{{Name: "lab-b", Reason: domain.ReasonUnreachable, Detail: "3 failed pings"}}
	_, res := runJob(t, f, summarySpec)
	require.Equal(t, domain.JobPartial, res.State)
	nodes := f.finished.Nodes
	require.Equal(t, []domain.JobNode{
		{Name: "lab-a", State: domain.JobNodeDone, Rows: 3},
		{Name: "lab-b", State: domain.JobNodeExcluded, Error: "unreachable: 3 failed pings"},
	}, nodes)
}
