package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/syndb/federation/internal/domain"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// AnalyticsJobName is the analytics job workflow's type name.
const AnalyticsJobName = "AnalyticsJob"

// JobID is the workflow ID of job id.
func JobID(id string) string { return "job-" + id }

// jobConcurrency bounds how many nodes a job works on at once.
const jobConcurrency = 16

// AnalyticsJobParams is the input of the analytics job workflow.
type AnalyticsJobParams struct {
	JobID string               `json:"job_id"`
	Spec  domain.AnalyticsSpec `json:"spec"`
}

// AnalyticsJob runs an analysis across the federation: it picks the
// routable nodes, runs the analysis on each (its own activity, retried),
// stores each node's part in S3, merges the parts, and records the job's
// end in PostgreSQL. A node that stays down leaves the job partial, or
// failed when the spec requires every node. Cancelling the workflow
// cancels the node activities (they heartbeat) and records the job
// cancelled.
func AnalyticsJob(ctx workflow.Context, p AnalyticsJobParams) (domain.JobResult, error) {
	res := domain.JobResult{State: domain.JobRunning, Nodes: []domain.JobNode{}, Excluded: []domain.Exclusion{}}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (domain.JobResult, error) { return res, nil }); err != nil {
		return res, fmt.Errorf("register progress query: %w", err)
	}
	short := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5, NonRetryableErrorTypes: []string{domain.ErrTypeInvalid}},
	})
	recordEnd := func(ctx workflow.Context) error {
		return workflow.ExecuteActivity(short, domain.FinishJobName, domain.FinishParams{
			JobID: p.JobID, State: res.State, Nodes: res.Nodes, Result: domain.JSONValue{Value: res.Result}, ResultObject: res.Object, Error: res.Error,
		}).Get(ctx, nil)
	}
	err := runAnalysis(ctx, short, p, &res)
	if temporal.IsCanceledError(err) || errors.Is(ctx.Err(), workflow.ErrCanceled) {
		// Record the cancellation on a context the cancellation does not reach.
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		short = workflow.WithActivityOptions(dctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 5}})
		res.State, res.Error = domain.JobCancelled, "cancelled"
		if ferr := recordEnd(dctx); ferr != nil {
			return res, fmt.Errorf("record cancellation: %w", ferr)
		}
		return res, err
	}
	if err != nil {
		res.State, res.Error = domain.JobFailed, rootMessage(err)
	}
	if ferr := recordEnd(ctx); ferr != nil {
		return res, fmt.Errorf("record job end: %w", ferr)
	}
	return res, nil
}

// runAnalysis routes the job, runs the analysis on every target node and
// merges their parts into res; AnalyticsJob records the outcome.
func runAnalysis(ctx, short workflow.Context, p AnalyticsJobParams, res *domain.JobResult) error {
	if err := workflow.ExecuteActivity(short, domain.StartJobName, domain.JobRef{JobID: p.JobID}).Get(ctx, nil); err != nil {
		return fmt.Errorf("start job: %w", err)
	}
	var targets domain.JobTargetsResult
	if err := workflow.ExecuteActivity(short, domain.JobTargetsName, domain.JobTargetsParams{Spec: p.Spec}).Get(ctx, &targets); err != nil {
		return fmt.Errorf("choose nodes: %w", err)
	}
	res.Excluded = targets.Excluded
	if p.Spec.RequireAll && len(targets.Excluded) > 0 {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("the job requires every node, and %d cannot take part (%s)",
			len(targets.Excluded), exclusionNames(targets.Excluded)), domain.ErrTypeInvalid, nil)
	}
	if len(targets.Nodes) == 0 {
		return temporal.NewNonRetryableApplicationError("no node can run this job ("+exclusionNames(targets.Excluded)+")",
			domain.ErrTypeInvalid, nil)
	}
	for _, n := range targets.Nodes {
		res.Nodes = append(res.Nodes, domain.JobNode{Name: n.Name, State: domain.JobNodeQueued})
	}
	// After the targets, so res.Nodes[i] stays targets.Nodes[i]: a partial
	// job's record names each node it left out, and why.
	for _, e := range targets.Excluded {
		res.Nodes = append(res.Nodes, domain.JobNode{Name: e.Name, State: domain.JobNodeExcluded, Error: exclusionText(e)})
	}
	nodeCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			MaximumAttempts: 3, NonRetryableErrorTypes: []string{domain.ErrTypeInvalid}},
	})
	var parts []domain.NodePart
	fanOut(ctx, len(targets.Nodes), jobConcurrency, func(i int) workflow.Future {
		res.Nodes[i].State = domain.JobNodeRunning
		opts := workflow.GetActivityOptions(nodeCtx)
		opts.ActivityID = "analyze-" + targets.Nodes[i].Name
		return workflow.ExecuteActivity(workflow.WithActivityOptions(nodeCtx, opts), domain.NodeAnalysisName,
			domain.NodeAnalysisParams{JobID: p.JobID, Node: targets.Nodes[i], Spec: p.Spec})
	}, func(i int, f workflow.Future) {
		var part domain.NodePart
		if err := f.Get(ctx, &part); err != nil {
			res.Nodes[i].State, res.Nodes[i].Error = domain.JobNodeMissing, rootMessage(err)
			return
		}
		res.Nodes[i].State, res.Nodes[i].Rows, res.Nodes[i].Bytes, res.Nodes[i].DurationMS = domain.JobNodeDone, part.Rows, part.Bytes, part.DurationMS
		parts = append(parts, part)
	})
	if ctx.Err() != nil {
		return temporal.NewCanceledError()
	}
	missing := len(targets.Nodes) - len(parts)
	if len(parts) == 0 {
		return fmt.Errorf("every node failed: %s", res.Nodes[0].Error)
	}
	if missing > 0 && p.Spec.RequireAll {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("the job requires every node, and %d failed", missing), domain.ErrTypeInvalid, nil)
	}
	mergeCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute, HeartbeatTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
	})
	var merged domain.MergeResult
	if err := workflow.ExecuteActivity(mergeCtx, domain.MergeJobName, domain.MergeParams{JobID: p.JobID, Spec: p.Spec, Parts: parts}).Get(ctx, &merged); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	res.Result, res.Object = merged.Summary, merged.Object
	res.State = domain.JobCompleted
	if missing > 0 || len(res.Excluded) > 0 {
		// Some node's data is not in the result: say so.
		res.State = domain.JobPartial
	}
	return nil
}

// exclusionText is why routing left a node out: "unreachable: 3 failed pings".
func exclusionText(e domain.Exclusion) string {
	if e.Detail == "" {
		return string(e.Reason)
	}
	return string(e.Reason) + ": " + e.Detail
}

func exclusionNames(ex []domain.Exclusion) string {
	if len(ex) == 0 {
		return "no node is registered"
	}
	out := ""
	for i, e := range ex {
		if i > 0 {
			out += ", "
		}
		out += e.Name + ": " + string(e.Reason)
	}
	return out
}
