package workflows_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/workflows"
)

func runOntology(t *testing.T, f *syncFleet, p workflows.OntologySyncParams) (workflows.OntologySyncResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.register(env)
	env.ExecuteWorkflow(workflows.OntologySyncName, p)
	require.True(t, env.IsWorkflowCompleted())
	var res workflows.OntologySyncResult
	if err := env.GetWorkflowError(); err != nil {
		return res, err
	}
	require.NoError(t, env.GetWorkflowResult(&res))
	return res, nil
}

func ontologyByName(res workflows.OntologySyncResult) map[string]workflows.NodeOntologyResult {
	out := map[string]workflows.NodeOntologyResult{}
	for _, n := range res.Nodes {
		out[n.Name] = n
	}
	return out
}

func TestOntologySyncAllNodes(t *testing.T) {
	t.Parallel()
	f := newSyncFleet(3)
	res, err := runOntology(t, f, workflows.OntologySyncParams{Version: 1})
	require.NoError(t, err)
	require.Equal(t, 1, res.Version)
	require.Equal(t, "sum", res.Checksum)
	require.Equal(t, 46, res.Terms)
	require.Equal(t, 3, res.Synced)
	require.Zero(t, res.Pending+res.Drift+res.Failed)
	for _, n := range res.Nodes {
		require.Equal(t, workflows.NodeSynced, n.Status, n.Name)
		require.Equal(t, 1, n.To)
		require.Equal(t, 46, n.TermsWritten)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, []domain.PrepareOntologyParams{{Version: 1}}, f.prepared, "a fleet sync sets the fleet's target")
	require.Equal(t, "ontology-lab-01", f.actIDs["lab-01"])
}

func TestOntologySyncPartialSuccess(t *testing.T) {
	t.Parallel()
	f := newSyncFleet(3)
	f.behavior["lab-01"] = "down"
	f.behavior["lab-02"] = "drift"
	res, err := runOntology(t, f, workflows.OntologySyncParams{Version: 1})
	require.NoError(t, err, "a node that cannot be reached must not fail the run")
	nodes := ontologyByName(res)
	require.Equal(t, workflows.NodeSynced, nodes["lab-00"].Status)
	require.Equal(t, workflows.NodePending, nodes["lab-01"].Status)
	require.Contains(t, nodes["lab-01"].Error, "no route")
	require.Equal(t, workflows.NodeDrift, nodes["lab-02"].Status)
	require.Contains(t, nodes["lab-02"].Error, "checksum")
	require.Equal(t, 1, res.Synced)
	require.Equal(t, 1, res.Pending)
	require.Equal(t, 1, res.Drift)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, 4, f.calls["lab-01"], "an unreachable node is retried per its policy")
	require.Equal(t, 1, f.calls["lab-02"], "drift is not retried")
}

func TestOntologySyncCatchUpOneNode(t *testing.T) {
	t.Parallel()
	f := newSyncFleet(4)
	res, err := runOntology(t, f, workflows.OntologySyncParams{Version: 1, Nodes: []string{"lab-03"}, CatchUp: true})
	require.NoError(t, err)
	require.Len(t, res.Nodes, 1)
	require.Equal(t, "lab-03", res.Nodes[0].Name)
	require.Equal(t, workflows.NodeSynced, res.Nodes[0].Status)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, map[string]int{"lab-03": 1}, f.calls, "only the named node is synced")
	require.Equal(t, []domain.PrepareOntologyParams{{Version: 1, CatchUp: true}}, f.prepared, "a catch-up leaves the fleet's target alone")
}

func TestOntologySyncBoundsConcurrency(t *testing.T) {
	t.Parallel()
	f := newSyncFleet(20)
	res, err := runOntology(t, f, workflows.OntologySyncParams{Version: 1, Concurrency: 4})
	require.NoError(t, err)
	require.Equal(t, 20, res.Synced)
	require.LessOrEqual(t, f.maxSeen.Load(), int32(4))
}

func TestOntologySyncRefusesVersions(t *testing.T) {
	t.Parallel()
	for v, want := range map[int]string{0: "must be at least 1", 2: "holds ontology version 1, not 2"} {
		f := newSyncFleet(2)
		_, err := runOntology(t, f, workflows.OntologySyncParams{Version: v})
		require.Error(t, err, "version %d", v)
		require.Contains(t, err.Error(), want)
		require.True(t, hasErrorType(err, domain.ErrTypeInvalid), "%v", err)
		f.mu.Lock()
		require.Empty(t, f.calls, "no node is sent a version the hub does not hold")
		f.mu.Unlock()
	}
}

// hasErrorType reports whether an application error of type typ is in
// err's chain (a workflow's own wrapping is an application error too).
func hasErrorType(err error, typ string) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == typ {
			return true
		}
		if appErr == nil {
			return false
		}
		err = appErr
	}
	return false
}
