package workflows

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
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
	return startOrJoin(ctx, c, id, p)
}

// StartSchemaCatchUp brings one node that was away (or is new) up to the
// fleet's target, as its own run of the schema sync workflow; a catch-up of
// that node to that target already going is joined.
func StartSchemaCatchUp(ctx context.Context, c client.Client, node string, target int) (Started, error) {
	return startOrJoin(ctx, c, SchemaCatchUpID(node, target), SchemaSyncParams{Target: target, Nodes: []string{node}, CatchUp: true})
}

func startOrJoin(ctx context.Context, c client.Client, id string, p SchemaSyncParams) (Started, error) {
	return startOrJoinRun(ctx, c, id, SchemaSyncName, p, TargetVersionKey.ValueSet(int64(p.Target)))
}

// start starts workflowType under id, or leaves the run going under it
// alone (conflict policy use-existing); reuse says whether a closed run's
// ID may be used again.
func start(ctx context.Context, c client.Client, id, workflowType string, reuse enumspb.WorkflowIdReusePolicy, params any,
	attrs ...temporal.SearchAttributeUpdate) (Started, error) {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    reuse,
		TypedSearchAttributes:    temporal.NewSearchAttributes(attrs...),
	}, workflowType, params)
	if err != nil {
		return Started{}, fmt.Errorf("start workflow %s: %w", id, err)
	}
	return Started{WorkflowID: run.GetID(), RunID: run.GetRunID()}, nil
}

// StartHealthMonitor starts the hub's health monitor, or leaves the one
// running alone: there is one per hub, under a fixed ID. A running monitor
// keeps its settings until it continues as new.
func StartHealthMonitor(ctx context.Context, c client.Client, p HealthMonitorParams) (Started, error) {
	return start(ctx, c, HealthMonitorID, HealthMonitorName, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE, p)
}

// StartAnalyticsJob starts the workflow of job id; starting it again joins
// the run (the job ID is the business key).
func StartAnalyticsJob(ctx context.Context, c client.Client, p AnalyticsJobParams) (Started, error) {
	return start(ctx, c, JobID(p.JobID), AnalyticsJobName, enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE, p)
}

// StartEtlJob starts the workflow of ETL job id (joined when running).
func StartEtlJob(ctx context.Context, c client.Client, p EtlJobParams) (Started, error) {
	return start(ctx, c, JobID(p.JobID), EtlJobName, enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE, p)
}

// EnsureSearchAttributes registers, in namespace, the search attributes the
// workflows use that are not registered yet. Starting a workflow with an
// unregistered attribute fails, so the worker and the API call this at start.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range SearchAttributes {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("register search attributes: %w", err)
	}
	return nil
}
