package workflows_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/workflows"
)

// fakeMeshes stands in for the mesh activities and records which ran.
type fakeMeshes struct {
	mu      sync.Mutex
	ran     []string
	readErr error
	// writeFails counts the write attempts that fail before one succeeds.
	writeFails int
}

func (f *fakeMeshes) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterWorkflowWithOptions(workflows.MeshIngest, workflow.RegisterOptions{Name: workflows.MeshIngestName})
	note := func(name string) int {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.ran = append(f.ran, name)
		n := 0
		for _, r := range f.ran {
			if r == name {
				n++
			}
		}
		return n
	}
	env.RegisterActivityWithOptions(func(_ context.Context, s domain.MeshSpec) (domain.NodeRef, error) {
		note(domain.MeshTargetName)
		return domain.NodeRef{Name: s.Node}, nil
	}, activity.RegisterOptions{Name: domain.MeshTargetName})
	env.RegisterActivityWithOptions(func(context.Context, domain.MeshParams) (domain.MeshWritten, error) {
		note(domain.CheckMeshRowName)
		return domain.MeshWritten{Rows: 1}, nil
	}, activity.RegisterOptions{Name: domain.CheckMeshRowName})
	env.RegisterActivityWithOptions(func(context.Context, domain.MeshParams) (domain.MeshReading, error) {
		note(domain.ReadMeshName)
		return domain.MeshReading{Source: domain.MeshStaged, Bytes: 100, Metrics: domain.MeshMetrics{Volume: 1, SurfaceArea: 6}}, f.readErr
	}, activity.RegisterOptions{Name: domain.ReadMeshName})
	for _, name := range []string{domain.StoreMeshName, domain.RecordMeshName, domain.DeleteStagedMeshName} {
		env.RegisterActivityWithOptions(func(_ context.Context, p domain.MeshParams) error {
			note(name)
			if p.Reading.Metrics.Volume != 1 || p.Node.Name != "lab-a" {
				return errors.New("the reading or node did not reach the step")
			}
			return nil
		}, activity.RegisterOptions{Name: name})
	}
	env.RegisterActivityWithOptions(func(context.Context, domain.MeshParams) (domain.MeshWritten, error) {
		if note(domain.WriteMeshMetricsName) <= f.writeFails {
			return domain.MeshWritten{}, errors.New("node unreachable")
		}
		return domain.MeshWritten{Rows: 1, Changed: true, Location: "s3://syndb-meshes/k"}, nil
	}, activity.RegisterOptions{Name: domain.WriteMeshMetricsName})
}

var meshSpec = domain.MeshSpec{Node: "lab-a", DatasetID: "8f0ec595-47d4-5cb0-a6d4-cee4d8efb6e8", Table: "neuron",
	CID: "1b4e28ba-2fa1-11d2-883f-0016d3cca427", Format: "glb"}

func runMeshIngest(t *testing.T, f *fakeMeshes) (domain.MeshIngestResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.register(env)
	env.ExecuteWorkflow(workflows.MeshIngestName, meshSpec)
	require.True(t, env.IsWorkflowCompleted())
	var res domain.MeshIngestResult
	err := env.GetWorkflowError()
	if err == nil {
		require.NoError(t, env.GetWorkflowResult(&res))
	}
	return res, err
}

func TestMeshIngest(t *testing.T) {
	t.Parallel()
	f := &fakeMeshes{writeFails: 2}
	res, err := runMeshIngest(t, f)
	require.NoError(t, err)
	require.Equal(t, "done", res.Step)
	require.Equal(t, "s3://syndb-meshes/k", res.Written.Location)
	require.InDelta(t, 6, res.Reading.Metrics.SurfaceArea, 0)
	require.Equal(t, []string{domain.MeshTargetName, domain.CheckMeshRowName, domain.ReadMeshName, domain.StoreMeshName,
		domain.WriteMeshMetricsName, domain.WriteMeshMetricsName, domain.WriteMeshMetricsName, domain.RecordMeshName,
		domain.DeleteStagedMeshName}, f.ran, "a node that fails twice is retried")
}

// TestMeshIngestBadMesh: a mesh that does not validate fails the run with
// its reason, once (not retried), and nothing after the reading runs.
func TestMeshIngestBadMesh(t *testing.T) {
	t.Parallel()
	f := &fakeMeshes{readErr: temporal.NewNonRetryableApplicationError("invalid mesh: the surface is open", domain.ErrTypeInvalid, nil)}
	_, err := runMeshIngest(t, f)
	require.ErrorContains(t, err, "reading the mesh")
	require.ErrorContains(t, err, "the surface is open")
	require.Equal(t, []string{domain.MeshTargetName, domain.CheckMeshRowName, domain.ReadMeshName}, f.ran)
}

func TestMeshIngestID(t *testing.T) {
	t.Parallel()
	require.Equal(t, "mesh-ingest-lab-a-8f0ec595-47d4-5cb0-a6d4-cee4d8efb6e8-neuron-1b4e28ba-2fa1-11d2-883f-0016d3cca427",
		workflows.MeshIngestID(meshSpec))
}
