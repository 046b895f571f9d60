package workflows_test

import (
	"context"
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

// fakeEtl stands in for the ETL activities.
type fakeEtl struct {
	mu        sync.Mutex
	problems  int64
	loadFails int // attempts that fail before a load succeeds
	loads     int
	slow      bool
	deleted   bool
	finished  domain.FinishParams
}

func (f *fakeEtl) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterWorkflowWithOptions(workflows.EtlJob, workflow.RegisterOptions{Name: workflows.EtlJobName})
	env.RegisterActivityWithOptions(func(context.Context, domain.JobRef) error { return nil },
		activity.RegisterOptions{Name: domain.StartJobName})
	env.RegisterActivityWithOptions(func(_ context.Context, s domain.EtlSpec) (domain.NodeRef, error) {
		return domain.NodeRef{Name: s.Node}, nil
	}, activity.RegisterOptions{Name: domain.EtlTargetName})
	env.RegisterActivityWithOptions(func(context.Context, domain.EtlParams) (domain.EtlReport, error) {
		rep := domain.EtlReport{Rows: 10, ProblemCount: f.problems}
		for range f.problems {
			rep.Problems = append(rep.Problems, domain.Problem{Row: 2, Column: "cid", Problem: "not a UUID"})
		}
		return rep, nil
	}, activity.RegisterOptions{Name: domain.ValidateStagedName})
	env.RegisterActivityWithOptions(func(ctx context.Context, p domain.EtlParams) (domain.EtlLoaded, error) {
		f.mu.Lock()
		f.loads++
		n := f.loads
		f.mu.Unlock()
		if f.slow {
			<-ctx.Done()
			return domain.EtlLoaded{}, ctx.Err()
		}
		if n <= f.loadFails {
			return domain.EtlLoaded{}, errors.New("node unreachable")
		}
		return domain.EtlLoaded{Rows: p.Rows}, nil
	}, activity.RegisterOptions{Name: domain.LoadStagedName})
	env.RegisterActivityWithOptions(func(context.Context, domain.EtlParams) (bool, error) { return true, nil },
		activity.RegisterOptions{Name: domain.RegisterDatasetName})
	env.RegisterActivityWithOptions(func(context.Context, domain.EtlParams) error { return nil },
		activity.RegisterOptions{Name: domain.RefreshCatalogName})
	env.RegisterActivityWithOptions(func(context.Context, domain.EtlParams) error {
		f.mu.Lock()
		f.deleted = true
		f.mu.Unlock()
		return nil
	}, activity.RegisterOptions{Name: domain.DeleteStagedName})
	env.RegisterActivityWithOptions(func(_ context.Context, p domain.FinishParams) error {
		f.mu.Lock()
		f.finished = p
		f.mu.Unlock()
		return nil
	}, activity.RegisterOptions{Name: domain.FinishJobName})
}

var etlSpec = domain.EtlSpec{Object: "uploads/x/n.csv", Table: "neuron", Node: "lab-a",
	Dataset: domain.DatasetMeta{DatasetID: "8f0ec595-47d4-5cb0-a6d4-cee4d8efb6e8", Name: "n"}}

func runEtl(t *testing.T, f *fakeEtl) (domain.EtlResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.register(env)
	env.ExecuteWorkflow(workflows.EtlJobName, workflows.EtlJobParams{JobID: "j", Spec: etlSpec})
	require.True(t, env.IsWorkflowCompleted())
	var res domain.EtlResult
	if err := env.GetWorkflowError(); err != nil {
		return res, err
	}
	require.NoError(t, env.GetWorkflowResult(&res))
	return res, nil
}

func TestEtlLoads(t *testing.T) {
	t.Parallel()
	f := &fakeEtl{loadFails: 2}
	res, err := runEtl(t, f)
	require.NoError(t, err)
	require.Equal(t, domain.JobCompleted, res.State)
	require.Equal(t, int64(10), res.Loaded.Rows)
	require.Equal(t, 3, f.loads, "the load is retried")
	require.True(t, f.deleted, "the staged file goes once loaded")
	require.True(t, res.CatalogRefreshed)
	require.Equal(t, domain.JobCompleted, f.finished.State)
}

func TestEtlBadFileLoadsNothing(t *testing.T) {
	t.Parallel()
	f := &fakeEtl{problems: 3}
	res, err := runEtl(t, f)
	require.NoError(t, err)
	require.Equal(t, domain.JobFailed, res.State)
	require.Contains(t, res.Error, "3 problems")
	require.Zero(t, f.loads)
	require.False(t, f.deleted, "the staged file stays until a load succeeds")
	require.Len(t, res.Report.Problems, 3)
}

func TestEtlNodeStaysDown(t *testing.T) {
	t.Parallel()
	f := &fakeEtl{loadFails: 100}
	res, err := runEtl(t, f)
	require.NoError(t, err)
	require.Equal(t, domain.JobFailed, res.State)
	require.Equal(t, 5, f.loads)
	require.False(t, f.deleted)
}

func TestEtlCancel(t *testing.T) {
	t.Parallel()
	f := &fakeEtl{slow: true}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.register(env)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Second)
	env.ExecuteWorkflow(workflows.EtlJobName, workflows.EtlJobParams{JobID: "j", Spec: etlSpec})
	var canceled *temporal.CanceledError
	require.ErrorAs(t, env.GetWorkflowError(), &canceled)
	require.Equal(t, domain.JobCancelled, f.finished.State)
	require.False(t, f.deleted)
}
