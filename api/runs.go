package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/syndb/federation/workflows"
)

// RunStatus says where a workflow run stands.
type RunStatus struct {
	WorkflowID string     `json:"workflow_id"`
	RunID      string     `json:"run_id"`
	Status     string     `json:"status"`
	StartedAt  time.Time  `json:"started_at"`
	ClosedAt   *time.Time `json:"closed_at,omitempty"`
	UIURL      string     `json:"ui_url"`
	Error      string     `json:"error,omitempty"`
}

// runStatus describes the latest run of workflow id and reads its result
// into result: the progress query's answer while it runs, its result once
// closed (or the error it failed with).
func (s *Server) runStatus(ctx context.Context, id, what string, result any) (RunStatus, error) {
	desc, err := s.deps.Temporal.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return RunStatus{}, errNotFound(fmt.Sprintf("no %s %q", what, id))
	}
	if err != nil {
		return RunStatus{}, fmt.Errorf("describe %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	out := RunStatus{
		WorkflowID: id,
		RunID:      info.GetExecution().GetRunId(),
		Status:     statusName(info.GetStatus()),
		StartedAt:  info.GetStartTime().AsTime().UTC(),
	}
	out.UIURL = s.uiURL(id, out.RunID)
	if info.GetCloseTime() != nil {
		t := info.GetCloseTime().AsTime().UTC()
		out.ClosedAt = &t
	}
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		v, err := s.deps.Temporal.QueryWorkflow(ctx, id, out.RunID, workflows.ProgressQuery)
		if err != nil {
			return RunStatus{}, fmt.Errorf("query progress of %s: %w", id, err)
		}
		if err := v.Get(result); err != nil {
			return RunStatus{}, fmt.Errorf("decode progress of %s: %w", id, err)
		}
		return out, nil
	}
	if err := s.deps.Temporal.GetWorkflow(ctx, id, out.RunID).Get(ctx, result); err != nil {
		out.Error = err.Error()
	}
	return out, nil
}
