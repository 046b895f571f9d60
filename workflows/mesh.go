package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/syndb/federation/internal/domain"
)

// MeshIngestName is the mesh ingest workflow's type name.
const MeshIngestName = "MeshIngest"

// MeshIngestID is the workflow ID of the ingest of one compartment's mesh:
// an ingest asked for while one runs joins it.
func MeshIngestID(s domain.MeshSpec) string {
	return fmt.Sprintf("mesh-ingest-%s-%s-%s-%s", s.Node, s.DatasetID, s.Table, s.CID)
}

// MeshIngest ingests one compartment's mesh: it finds the node, checks the
// compartment's row is there, reads and measures the uploaded file (a bad
// mesh fails here, for good, with the reason, before anything changed),
// stores it in the meshes bucket, writes its metrics and location into the
// row on the node, records it for the catalog, and removes the upload. Each
// step is idempotent, so a run again (after the upload was removed, it
// measures the stored mesh) leaves the same row.
func MeshIngest(ctx workflow.Context, spec domain.MeshSpec) (domain.MeshIngestResult, error) {
	res := domain.MeshIngestResult{Spec: spec, Step: "starting"}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (domain.MeshIngestResult, error) { return res, nil }); err != nil {
		return res, fmt.Errorf("register progress query: %w", err)
	}
	retry := &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
		MaximumAttempts: 10, NonRetryableErrorTypes: []string{domain.ErrTypeInvalid}}
	short := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: retry})
	long := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout: 30 * time.Second, RetryPolicy: retry})
	step := func(name string, c workflow.Context, activity string, in, out any) error {
		res.Step = name
		if err := workflow.ExecuteActivity(c, activity, in).Get(ctx, out); err != nil {
			upsertOutcome(ctx, OutcomeFailed)
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	p := domain.MeshParams{Spec: spec, WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID}
	if err := step("finding the node", short, domain.MeshTargetName, spec, &p.Node); err != nil {
		return res, err
	}
	if err := step("looking up the row", short, domain.CheckMeshRowName, p, nil); err != nil {
		return res, err
	}
	if err := step("reading the mesh", long, domain.ReadMeshName, p, &p.Reading); err != nil {
		return res, err
	}
	res.Reading = &p.Reading
	if err := step("storing the mesh", long, domain.StoreMeshName, p, nil); err != nil {
		return res, err
	}
	var written domain.MeshWritten
	if err := step("writing the metrics", long, domain.WriteMeshMetricsName, p, &written); err != nil {
		return res, err
	}
	res.Written = &written
	if err := step("recording the mesh", short, domain.RecordMeshName, p, nil); err != nil {
		return res, err
	}
	if err := step("removing the upload", short, domain.DeleteStagedMeshName, p, nil); err != nil {
		return res, err
	}
	res.Step = "done"
	upsertOutcome(ctx, OutcomeComplete)
	return res, nil
}
