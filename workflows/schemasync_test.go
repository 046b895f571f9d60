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
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/workflows"
)

// fakeFleet stands in for the hub's activities: each node either syncs,
// fails (retryably) or reports drift.
type fakeFleet struct {
	nodes    []domain.NodeRef
	behavior map[string]string // node -> "ok" | "down" | "drift"

	mu       sync.Mutex
	calls    map[string]int
	inflight atomic.Int32
	maxSeen  atomic.Int32
	hubCalls atomic.Int32
	hubParam domain.ApplyHubParams
	actIDs   map[string]string // node -> activity ID
	batches  int               // SyncNodesSchema calls
}

func newFleet(n int) *fakeFleet {
	f := &fakeFleet{behavior: map[string]string{}, calls: map[string]int{}, actIDs: map[string]string{}}
	for i := range n {
		name := fmt.Sprintf("lab-%02d", i)
		f.nodes = append(f.nodes, domain.NodeRef{Name: name, PeerID: "peer-" + name, SchemaVersion: 1})
		f.behavior[name] = "ok"
	}
	return f
}

func (f *fakeFleet) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterWorkflowWithOptions(workflows.SchemaSync, workflow.RegisterOptions{Name: workflows.SchemaSyncName})
	env.RegisterActivityWithOptions(func(_ context.Context, p domain.ApplyHubParams) (domain.ApplyHubResult, error) {
		f.hubCalls.Add(1)
		f.mu.Lock()
		f.hubParam = p
		f.mu.Unlock()
		return domain.ApplyHubResult{From: 1, To: p.Target}, nil
	}, activity.RegisterOptions{Name: domain.ApplyHubSchemaName})
	env.RegisterActivityWithOptions(func(context.Context) ([]domain.NodeRef, error) {
		return f.nodes, nil
	}, activity.RegisterOptions{Name: domain.ListSyncTargetsName})
	env.RegisterActivityWithOptions(func(ctx context.Context, p domain.SyncNodeParams) (domain.SyncNodeResult, error) {
		now := f.inflight.Add(1)
		defer f.inflight.Add(-1)
		for {
			seen := f.maxSeen.Load()
			if now <= seen || f.maxSeen.CompareAndSwap(seen, now) {
				break
			}
		}
		f.mu.Lock()
		f.calls[p.Node.Name]++
		f.actIDs[p.Node.Name] = activity.GetInfo(ctx).ActivityID
		f.mu.Unlock()
		switch f.behavior[p.Node.Name] {
		case "down":
			return domain.SyncNodeResult{}, errors.New("dial backoff: no route to " + p.Node.Name)
		case "drift":
			return domain.SyncNodeResult{}, temporal.NewNonRetryableApplicationError("schema drift at version 2", domain.ErrTypeDrift, nil)
		}
		return domain.SyncNodeResult{From: p.Node.SchemaVersion, To: p.Target,
			Applied: []domain.MigrationResult{{Version: p.Target, Name: "m"}}}, nil
	}, activity.RegisterOptions{Name: domain.SyncNodeSchemaName})
	env.RegisterActivityWithOptions(f.syncBatch, activity.RegisterOptions{Name: domain.SyncNodesSchemaName})
}

// syncBatch is SyncNodesSchema over the fake fleet: every node of the batch
// at once, "down" nodes tried four times, drift once.
func (f *fakeFleet) syncBatch(ctx context.Context, p domain.SyncNodesParams) (domain.SyncNodesResult, error) {
	now := f.inflight.Add(int32(len(p.Nodes)))
	defer f.inflight.Add(-int32(len(p.Nodes)))
	for {
		seen := f.maxSeen.Load()
		if now <= seen || f.maxSeen.CompareAndSwap(seen, now) {
			break
		}
	}
	f.mu.Lock()
	f.batches++
	f.mu.Unlock()
	out := domain.SyncNodesResult{}
	for _, n := range p.Nodes {
		if f.behavior[n.Name] == "poison" {
			return out, errors.New("worker lost its connection to Temporal")
		}
	}
	for _, n := range p.Nodes {
		o := domain.NodeSyncOutcome{Name: n.Name, Attempts: 1}
		switch f.behavior[n.Name] {
		case "down":
			o.Attempts, o.Error = 4, "dial backoff: no route to "+n.Name
		case "drift":
			o.Error, o.ErrType = "schema drift at version 2", domain.ErrTypeDrift
		default:
			o.Result = domain.SyncNodeResult{From: n.SchemaVersion, To: p.Target,
				Applied: []domain.MigrationResult{{Version: p.Target, Name: "m"}}}
		}
		f.mu.Lock()
		f.calls[n.Name] += o.Attempts
		f.actIDs[n.Name] = activity.GetInfo(ctx).ActivityID
		f.mu.Unlock()
		out.Nodes = append(out.Nodes, o)
	}
	return out, nil
}

func run(t *testing.T, f *fakeFleet, p workflows.SchemaSyncParams) (workflows.SchemaSyncResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.register(env)
	env.ExecuteWorkflow(workflows.SchemaSyncName, p)
	require.True(t, env.IsWorkflowCompleted())
	var res workflows.SchemaSyncResult
	if err := env.GetWorkflowError(); err != nil {
		return res, err
	}
	require.NoError(t, env.GetWorkflowResult(&res))
	return res, nil
}

func byName(res workflows.SchemaSyncResult) map[string]workflows.NodeSyncResult {
	out := map[string]workflows.NodeSyncResult{}
	for _, n := range res.Nodes {
		out[n.Name] = n
	}
	return out
}

func TestSchemaSyncAllNodes(t *testing.T) {
	t.Parallel()
	f := newFleet(3)
	res, err := run(t, f, workflows.SchemaSyncParams{Target: 3})
	require.NoError(t, err)
	require.Equal(t, 3, res.Target)
	require.Equal(t, 3, res.Hub.To)
	require.Equal(t, 3, res.Synced)
	require.Zero(t, res.Pending+res.Failed)
	for _, n := range res.Nodes {
		require.Equal(t, workflows.NodeSynced, n.Status, n.Name)
		require.Equal(t, 1, n.From)
		require.Equal(t, 3, n.To)
	}
}

func TestSchemaSyncPartialSuccess(t *testing.T) {
	t.Parallel()
	f := newFleet(3)
	f.behavior["lab-01"] = "down"
	f.behavior["lab-02"] = "drift"
	res, err := run(t, f, workflows.SchemaSyncParams{Target: 3})
	require.NoError(t, err, "a node that cannot be reached must not fail the run")
	nodes := byName(res)
	require.Equal(t, workflows.NodeSynced, nodes["lab-00"].Status)
	require.Equal(t, workflows.NodePending, nodes["lab-01"].Status)
	require.Contains(t, nodes["lab-01"].Error, "no route")
	require.Equal(t, 1, nodes["lab-01"].To, "a pending node keeps its version")
	require.Equal(t, workflows.NodeDrift, nodes["lab-02"].Status)
	require.Equal(t, 1, res.Synced)
	require.Equal(t, 1, res.Pending)
	require.Equal(t, 1, res.Drift)
	require.Zero(t, res.Failed)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, 4, f.calls["lab-01"], "an unreachable node is retried per its policy")
	require.Equal(t, 1, f.calls["lab-02"], "drift is not retried")
}

func TestSchemaSyncBoundsConcurrency(t *testing.T) {
	t.Parallel()
	f := newFleet(20)
	res, err := run(t, f, workflows.SchemaSyncParams{Target: 2, Concurrency: 3})
	require.NoError(t, err)
	require.Equal(t, 20, res.Synced)
	require.LessOrEqual(t, f.maxSeen.Load(), int32(3))
}

func TestSchemaSyncNoNodes(t *testing.T) {
	t.Parallel()
	f := newFleet(0)
	res, err := run(t, f, workflows.SchemaSyncParams{Target: 3})
	require.NoError(t, err)
	require.Empty(t, res.Nodes)
	require.Equal(t, int32(1), f.hubCalls.Load(), "the hub warehouse is migrated even with no nodes")
}

func TestSchemaSyncRejectsBadTarget(t *testing.T) {
	t.Parallel()
	f := newFleet(1)
	_, err := run(t, f, workflows.SchemaSyncParams{Target: 0})
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, domain.ErrTypeInvalid, appErr.Type())
	require.Zero(t, f.hubCalls.Load())
}

func TestSchemaSyncProgressQuery(t *testing.T) {
	t.Parallel()
	f := newFleet(2)
	// lab-01 is down: its retries wait on timers, and the query lands in
	// the retry backoffs (1 s, then 2 s), while the run is still going.
	f.behavior["lab-01"] = "down"
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.register(env)
	var mid workflows.SchemaSyncResult
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.ProgressQuery)
		require.NoError(t, err)
		require.NoError(t, v.Get(&mid))
	}, 1500*time.Millisecond)
	env.ExecuteWorkflow(workflows.SchemaSyncName, workflows.SchemaSyncParams{Target: 3})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 3, mid.Target)
	require.Len(t, mid.Nodes, 2)
	require.Equal(t, workflows.NodeSyncing, byName(mid)["lab-01"].Status, "lab-01 is still being retried")
	v, err := env.QueryWorkflow(workflows.ProgressQuery)
	require.NoError(t, err)
	var final workflows.SchemaSyncResult
	require.NoError(t, v.Get(&final))
	require.Equal(t, 1, final.Synced)
	require.Equal(t, 1, final.Pending)
}

func TestSchemaSyncCatchUpOneNode(t *testing.T) {
	t.Parallel()
	f := newFleet(4)
	res, err := run(t, f, workflows.SchemaSyncParams{Target: 3, Nodes: []string{"lab-02"}, CatchUp: true})
	require.NoError(t, err)
	require.Len(t, res.Nodes, 1)
	require.Equal(t, "lab-02", res.Nodes[0].Name)
	require.Equal(t, workflows.NodeSynced, res.Nodes[0].Status)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, map[string]int{"lab-02": 1}, f.calls, "only the named node is synced")
	require.True(t, f.hubParam.CatchUp, "a catch-up leaves the fleet's target alone")
}

func TestSchemaSyncNamesEachNodesActivity(t *testing.T) {
	t.Parallel()
	f := newFleet(2)
	_, err := run(t, f, workflows.SchemaSyncParams{Target: 3})
	require.NoError(t, err)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, map[string]string{"lab-00": "sync-lab-00", "lab-01": "sync-lab-01"}, f.actIDs)
	require.False(t, f.hubParam.CatchUp)
}

func TestSchemaSyncUnknownNodeNamesNothing(t *testing.T) {
	t.Parallel()
	f := newFleet(2)
	res, err := run(t, f, workflows.SchemaSyncParams{Target: 3, Nodes: []string{"lab-99"}})
	require.NoError(t, err)
	require.Empty(t, res.Nodes)
	require.Equal(t, int32(1), f.hubCalls.Load())
}

func TestSchemaSyncHubFailureFailsTheRun(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.SchemaSync, workflow.RegisterOptions{Name: workflows.SchemaSyncName})
	env.RegisterActivityWithOptions(func(context.Context, domain.ApplyHubParams) (domain.ApplyHubResult, error) {
		return domain.ApplyHubResult{}, temporal.NewNonRetryableApplicationError("hub warehouse: schema drift at version 2: x", domain.ErrTypeDrift, nil)
	}, activity.RegisterOptions{Name: domain.ApplyHubSchemaName})
	env.ExecuteWorkflow(workflows.SchemaSyncName, workflows.SchemaSyncParams{Target: 3})
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	require.Contains(t, err.Error(), "migrate hub warehouse")
	require.Contains(t, err.Error(), "schema drift at version 2")
}

// TestSchemaSyncBatchesALargeFleet: a fleet larger than the concurrency
// bound is synced a few nodes per activity, each node once, with its own
// status, and never more nodes at once than the bound.
func TestSchemaSyncBatchesALargeFleet(t *testing.T) {
	t.Parallel()
	f := newFleet(100)
	f.behavior["lab-07"] = "down"
	f.behavior["lab-42"] = "drift"
	res, err := run(t, f, workflows.SchemaSyncParams{Target: 3, Concurrency: 32})
	require.NoError(t, err)
	require.Len(t, res.Nodes, 100)
	require.Equal(t, 98, res.Synced)
	require.Equal(t, 1, res.Pending)
	require.Equal(t, 1, res.Drift)
	nodes := byName(res)
	require.Equal(t, workflows.NodePending, nodes["lab-07"].Status)
	require.Contains(t, nodes["lab-07"].Error, "no route")
	require.Equal(t, workflows.NodeDrift, nodes["lab-42"].Status)
	require.Equal(t, 3, nodes["lab-99"].To)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, 25, f.batches, "100 nodes over 32 slots: 4 a batch")
	require.LessOrEqual(t, f.maxSeen.Load(), int32(32))
	for name, n := range f.calls {
		if name != "lab-07" {
			require.Equal(t, 1, n, name)
		}
	}
	require.Equal(t, "sync-lab-00..lab-03", f.actIDs["lab-02"], "the activity names its batch")
}

// TestSchemaSyncSmallFleetKeepsOneActivityPerNode: within the bound, each
// node still has its own activity, named after it.
func TestSchemaSyncSmallFleetKeepsOneActivityPerNode(t *testing.T) {
	t.Parallel()
	f := newFleet(32)
	res, err := run(t, f, workflows.SchemaSyncParams{Target: 2, Concurrency: 32})
	require.NoError(t, err)
	require.Equal(t, 32, res.Synced)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Zero(t, f.batches)
	require.Equal(t, "sync-lab-31", f.actIDs["lab-31"])
}

// TestSchemaSyncFailedBatchLeavesItsNodesPending: a batch whose activity
// fails every retry reports each of its nodes pending with the reason; the
// other batches are not affected.
func TestSchemaSyncFailedBatchLeavesItsNodesPending(t *testing.T) {
	t.Parallel()
	f := newFleet(40)
	f.behavior["lab-05"] = "poison" // in the batch lab-04..lab-05
	res, err := run(t, f, workflows.SchemaSyncParams{Target: 2, Concurrency: 32})
	require.NoError(t, err)
	nodes := byName(res)
	for _, name := range []string{"lab-04", "lab-05"} {
		require.Equal(t, workflows.NodePending, nodes[name].Status, name)
		require.Contains(t, nodes[name].Error, "lost its connection", name)
	}
	require.Equal(t, 38, res.Synced)
	require.Equal(t, 2, res.Pending)
}

// TestSchemaSyncFailedBatchKeepsFinishedOutcomes: a batch whose every
// attempt dies by heartbeat timeout after lab-04 synced (and heartbeated
// its outcome) must report lab-04 synced, as the per-node path would: its
// version is already recorded in the registry.
func TestSchemaSyncFailedBatchKeepsFinishedOutcomes(t *testing.T) {
	var nodes []domain.NodeRef
	for i := range 40 {
		nodes = append(nodes, domain.NodeRef{Name: fmt.Sprintf("lab-%02d", i), SchemaVersion: 1})
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.SchemaSync, workflow.RegisterOptions{Name: workflows.SchemaSyncName})
	env.RegisterActivityWithOptions(func(_ context.Context, p domain.ApplyHubParams) (domain.ApplyHubResult, error) {
		return domain.ApplyHubResult{From: 1, To: p.Target}, nil
	}, activity.RegisterOptions{Name: domain.ApplyHubSchemaName})
	env.RegisterActivityWithOptions(func(context.Context) ([]domain.NodeRef, error) { return nodes, nil },
		activity.RegisterOptions{Name: domain.ListSyncTargetsName})
	env.RegisterActivityWithOptions(func(_ context.Context, p domain.SyncNodesParams) (domain.SyncNodesResult, error) {
		var out domain.SyncNodesResult
		for _, n := range p.Nodes {
			if n.Name == "lab-05" { // batch lab-04..lab-05: lab-04 synced, then the worker died
				return out, temporal.NewHeartbeatTimeoutError([]domain.NodeSyncOutcome{
					{Name: "lab-04", Result: domain.SyncNodeResult{From: 1, To: 2}, Attempts: 1}})
			}
		}
		for _, n := range p.Nodes {
			out.Nodes = append(out.Nodes, domain.NodeSyncOutcome{Name: n.Name, Result: domain.SyncNodeResult{From: 1, To: p.Target}, Attempts: 1})
		}
		return out, nil
	}, activity.RegisterOptions{Name: domain.SyncNodesSchemaName})
	env.ExecuteWorkflow(workflows.SchemaSyncName, workflows.SchemaSyncParams{Target: 2, Concurrency: 32})
	require.NoError(t, env.GetWorkflowError())
	var res workflows.SchemaSyncResult
	require.NoError(t, env.GetWorkflowResult(&res))
	got := byName(res)
	require.Equal(t, workflows.NodePending, got["lab-05"].Status)
	require.Equal(t, workflows.NodeSynced, got["lab-04"].Status, "lab-04 synced and said so in its heartbeat")
	require.Equal(t, 2, got["lab-04"].To)
}
