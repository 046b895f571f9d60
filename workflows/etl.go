package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/syndb/federation/internal/domain"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// EtlJobName is the ETL job workflow's type name.
const EtlJobName = "EtlJob"

// EtlJobParams is the input of the ETL job workflow.
type EtlJobParams struct {
	JobID string         `json:"job_id"`
	Spec  domain.EtlSpec `json:"spec"`
}

// EtlJob loads a staged file into a node's table: it validates the whole
// file first (a bad file yields a report of the rows and columns at fault
// and loads nothing), streams it to the node over Flight, registers the
// dataset's metadata on the node, refreshes the hub's catalog of the node,
// and only then deletes the staged object.
func EtlJob(ctx workflow.Context, p EtlJobParams) (domain.EtlResult, error) {
	res := domain.EtlResult{State: domain.JobRunning, Step: "starting", Report: domain.EtlReport{Problems: []domain.Problem{}}}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (domain.EtlResult, error) { return res, nil }); err != nil {
		return res, fmt.Errorf("register progress query: %w", err)
	}
	short := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5, NonRetryableErrorTypes: []string{domain.ErrTypeInvalid}},
	})
	long := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:    30 * time.Second,
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			MaximumAttempts: 5, NonRetryableErrorTypes: []string{domain.ErrTypeInvalid}},
	})
	recordEnd := func(ctx, short workflow.Context) error {
		return workflow.ExecuteActivity(short, domain.FinishJobName, domain.FinishParams{
			JobID: p.JobID, State: res.State, Nodes: []domain.JobNode{}, Result: domain.JSONValue{Value: res}, Error: res.Error,
		}).Get(ctx, nil)
	}
	err := runLoad(ctx, short, long, p, &res)
	if temporal.IsCanceledError(err) || errors.Is(ctx.Err(), workflow.ErrCanceled) {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		dshort := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 5}})
		res.State, res.Error = domain.JobCancelled, "cancelled"
		if ferr := recordEnd(dctx, dshort); ferr != nil {
			return res, fmt.Errorf("record cancellation: %w", ferr)
		}
		return res, err
	}
	if err != nil {
		res.State, res.Error = domain.JobFailed, rootMessage(err)
	} else {
		res.State, res.Step = domain.JobCompleted, "done"
	}
	if ferr := recordEnd(ctx, short); ferr != nil {
		return res, fmt.Errorf("record job end: %w", ferr)
	}
	return res, nil
}

// runLoad validates the staged file, loads it into its target and
// registers the dataset, recording each step in res; EtlJob records the
// outcome.
func runLoad(ctx, short, long workflow.Context, p EtlJobParams, res *domain.EtlResult) error {
	if err := workflow.ExecuteActivity(short, domain.StartJobName, domain.JobRef{JobID: p.JobID}).Get(ctx, nil); err != nil {
		return fmt.Errorf("start job: %w", err)
	}
	res.Step = "choosing the node"
	var node domain.NodeRef
	if err := workflow.ExecuteActivity(short, domain.EtlTargetName, p.Spec).Get(ctx, &node); err != nil {
		return fmt.Errorf("target node: %w", err)
	}
	params := domain.EtlParams{JobID: p.JobID, Spec: p.Spec, Node: node}
	res.Step = "validating"
	if err := workflow.ExecuteActivity(long, domain.ValidateStagedName, params).Get(ctx, &res.Report); err != nil {
		return fmt.Errorf("validate: %w", err)
	}
	if res.Report.ProblemCount > 0 {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("the file has %d problems (see the report): nothing was loaded",
			res.Report.ProblemCount), domain.ErrTypeInvalid, nil)
	}
	params.Rows = res.Report.Rows
	res.Step = "loading"
	if err := workflow.ExecuteActivity(long, domain.LoadStagedName, params).Get(ctx, &res.Loaded); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	res.Step = "registering the dataset"
	if err := workflow.ExecuteActivity(short, domain.RegisterDatasetName, params).Get(ctx, &res.Registered); err != nil {
		return fmt.Errorf("register dataset: %w", err)
	}
	res.Step = "refreshing the catalog"
	if err := workflow.ExecuteActivity(short, domain.RefreshCatalogName, params).Get(ctx, nil); err != nil {
		// The rows are in: a catalog that catches up at its next sync is
		// no reason to fail the load.
		workflow.GetLogger(ctx).Warn("catalog refresh failed", "node", node.Name, "err", err)
	} else {
		res.CatalogRefreshed = true
	}
	res.Step = "removing the staged file"
	if err := workflow.ExecuteActivity(short, domain.DeleteStagedName, params).Get(ctx, nil); err != nil {
		return fmt.Errorf("remove staged file: %w", err)
	}
	return nil
}
