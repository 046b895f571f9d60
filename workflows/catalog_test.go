package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/workflows"
)

// syncFleet stands in for the hub's catalog and ontology activities: each
// node answers ("ok"), cannot be reached ("down"), is in ontology drift
// ("drift") or refuses the request ("invalid").
type syncFleet struct {
	nodes    []domain.NodeRef
	behavior map[string]string

	mu       sync.Mutex
	calls    map[string]int
	actIDs   map[string]string
	prepared []domain.PrepareOntologyParams
	inflight atomic.Int32
	maxSeen  atomic.Int32
}

func newSyncFleet(n int) *syncFleet {
	f := &syncFleet{behavior: map[string]string{}, calls: map[string]int{}, actIDs: map[string]string{}}
	for i := range n {
		name := fmt.Sprintf("lab-%02d", i)
		f.nodes = append(f.nodes, domain.NodeRef{Name: name, PeerID: "peer-" + name})
		f.behavior[name] = "ok"
	}
	return f
}

// node records a call of a node's activity and says how it goes.
func (f *syncFleet) node(ctx context.Context, name string) error {
	now := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		seen := f.maxSeen.Load()
		if now <= seen || f.maxSeen.CompareAndSwap(seen, now) {
			break
		}
	}
	f.mu.Lock()
	f.calls[name]++
	f.actIDs[name] = activity.GetInfo(ctx).ActivityID
	f.mu.Unlock()
	switch f.behavior[name] {
	case "down":
		return errors.New("dial backoff: no route to " + name)
	case "drift":
		return temporal.NewNonRetryableApplicationError(name+": ontology version 1 is recorded with checksum x", domain.ErrTypeDrift, nil)
	case "invalid":
		return temporal.NewNonRetryableApplicationError(name+": refused", domain.ErrTypeInvalid, nil)
	}
	return nil
}

func (f *syncFleet) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterWorkflowWithOptions(workflows.CatalogSync, workflow.RegisterOptions{Name: workflows.CatalogSyncName})
	env.RegisterWorkflowWithOptions(workflows.OntologySync, workflow.RegisterOptions{Name: workflows.OntologySyncName})
	env.RegisterActivityWithOptions(func(context.Context) ([]domain.NodeRef, error) {
		return f.nodes, nil
	}, activity.RegisterOptions{Name: domain.ListSyncTargetsName})
	env.RegisterActivityWithOptions(func(ctx context.Context, p domain.SyncNodeCatalogParams) (domain.SyncNodeCatalogResult, error) {
		if err := f.node(ctx, p.Node.Name); err != nil {
			return domain.SyncNodeCatalogResult{}, err
		}
		return domain.SyncNodeCatalogResult{CatalogChange: domain.CatalogChange{Datasets: 3, Added: 2, Updated: 1, Removed: 1, Rows: 300}}, nil
	}, activity.RegisterOptions{Name: domain.SyncNodeCatalogName})
	env.RegisterActivityWithOptions(func(_ context.Context, p domain.PrepareOntologyParams) (domain.PrepareOntologyResult, error) {
		f.mu.Lock()
		f.prepared = append(f.prepared, p)
		f.mu.Unlock()
		if p.Version != 1 {
			return domain.PrepareOntologyResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("the hub holds ontology version 1, not %d", p.Version), domain.ErrTypeInvalid, nil)
		}
		return domain.PrepareOntologyResult{Version: 1, Checksum: "sum", Terms: 46}, nil
	}, activity.RegisterOptions{Name: domain.PrepareOntologyName})
	env.RegisterActivityWithOptions(func(ctx context.Context, p domain.SyncNodeOntologyParams) (domain.SyncNodeOntologyResult, error) {
		if err := f.node(ctx, p.Node.Name); err != nil {
			return domain.SyncNodeOntologyResult{}, err
		}
		return domain.SyncNodeOntologyResult{From: 0, To: p.Version, TermsWritten: 46}, nil
	}, activity.RegisterOptions{Name: domain.SyncNodeOntologyName})
}

func runCatalog(t *testing.T, f *syncFleet, p workflows.CatalogSyncParams) workflows.CatalogSyncResult {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.register(env)
	env.ExecuteWorkflow(workflows.CatalogSyncName, p)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res workflows.CatalogSyncResult
	require.NoError(t, env.GetWorkflowResult(&res))
	return res
}

func catalogByName(res workflows.CatalogSyncResult) map[string]workflows.NodeCatalogResult {
	out := map[string]workflows.NodeCatalogResult{}
	for _, n := range res.Nodes {
		out[n.Name] = n
	}
	return out
}

func TestCatalogSyncAllNodes(t *testing.T) {
	t.Parallel()
	f := newSyncFleet(3)
	res := runCatalog(t, f, workflows.CatalogSyncParams{})
	require.Equal(t, 3, res.Synced)
	require.Zero(t, res.Pending+res.Failed)
	require.Equal(t, 9, res.Datasets)
	for _, n := range res.Nodes {
		require.Equal(t, workflows.NodeSynced, n.Status, n.Name)
		require.Equal(t, workflows.NodeCatalogResult{Name: n.Name, Status: workflows.NodeSynced, Datasets: 3, Added: 2, Updated: 1,
			Removed: 1, Rows: 300, DurationMS: n.DurationMS}, n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, map[string]string{"lab-00": "catalog-lab-00", "lab-01": "catalog-lab-01", "lab-02": "catalog-lab-02"}, f.actIDs)
}

func TestCatalogSyncPartialSuccess(t *testing.T) {
	t.Parallel()
	f := newSyncFleet(3)
	f.behavior["lab-01"] = "down"
	f.behavior["lab-02"] = "invalid"
	res := runCatalog(t, f, workflows.CatalogSyncParams{})
	nodes := catalogByName(res)
	require.Equal(t, workflows.NodeSynced, nodes["lab-00"].Status)
	require.Equal(t, workflows.NodePending, nodes["lab-01"].Status)
	require.Contains(t, nodes["lab-01"].Error, "no route")
	require.Equal(t, workflows.NodeFailed, nodes["lab-02"].Status)
	require.Equal(t, 1, res.Synced)
	require.Equal(t, 1, res.Pending)
	require.Equal(t, 1, res.Failed)
	require.Equal(t, 3, res.Datasets, "only synced nodes' datasets count")
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, 4, f.calls["lab-01"], "an unreachable node is retried per its policy")
	require.Equal(t, 1, f.calls["lab-02"], "a refusal is not retried")
}

func TestCatalogSyncOneNode(t *testing.T) {
	t.Parallel()
	f := newSyncFleet(4)
	f.behavior["lab-02"] = "down"
	res := runCatalog(t, f, workflows.CatalogSyncParams{Nodes: []string{"lab-02"}, CatchUp: true})
	require.Len(t, res.Nodes, 1)
	require.Equal(t, workflows.NodePending, res.Nodes[0].Status)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, map[string]int{"lab-02": 12}, f.calls, "only the named node, retried patiently after it registered")
}

func TestCatalogSyncBoundsConcurrency(t *testing.T) {
	t.Parallel()
	f := newSyncFleet(20)
	res := runCatalog(t, f, workflows.CatalogSyncParams{Concurrency: 3})
	require.Equal(t, 20, res.Synced)
	require.LessOrEqual(t, f.maxSeen.Load(), int32(3))
}

func TestCatalogSyncNoNodes(t *testing.T) {
	t.Parallel()
	res := runCatalog(t, newSyncFleet(0), workflows.CatalogSyncParams{})
	require.Empty(t, res.Nodes)
	require.Zero(t, res.Synced)
}
