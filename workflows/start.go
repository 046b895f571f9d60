package workflows

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// Started describes a workflow run a start helper started or joined.
type Started struct {
	WorkflowID string
	RunID      string
	// Joined is true when a run for the same business key was already going.
	Joined bool
}

// StartSchemaSync starts the sync to target, or joins the run already going
// for it: the workflow ID is the target version, and a running workflow with
// that ID is used instead of starting another. A finished one may run again
// (it applies nothing twice).
func StartSchemaSync(ctx context.Context, c client.Client, p SchemaSyncParams) (Started, error) {
	id := SchemaSyncID(p.Target)
	joined := false
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
	case err != nil:
		return Started{}, fmt.Errorf("describe workflow %s: %w", id, err)
	default:
		joined = desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, SchemaSyncName, p)
	if err != nil {
		return Started{}, fmt.Errorf("start workflow %s: %w", id, err)
	}
	return Started{WorkflowID: run.GetID(), RunID: run.GetRunID(), Joined: joined}, nil
}
