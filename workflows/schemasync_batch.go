package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/syndb/federation/internal/domain"
)

// MaxNodesPerActivity bounds a batch of a large sync: a node that cannot be
// reached keeps its batch's activity open while it is tried again, so
// batches stay small enough that the others go on.
const MaxNodesPerActivity = 8

// nodesPerActivity is how many nodes each activity of a sync of n nodes
// syncs, at most limit nodes at once: one while every node can have its
// own activity in flight, else as many as spread n over limit activities,
// up to MaxNodesPerActivity. Temporal's cost is per activity (its events,
// dispatch and persistence), the node's cost is per node: batching keeps
// the first from dominating the second in a large fleet.
func nodesPerActivity(n, limit int) int {
	if limit <= 0 {
		limit = DefaultSyncConcurrency
	}
	if n <= limit {
		return 1
	}
	// At least 8 batches in flight (half the slots when there are fewer
	// than 16), so a node that hangs through its tries holds up a few
	// batch-mates, not the sync.
	inFlight := min(8, max(1, limit/2))
	return max(1, min(MaxNodesPerActivity, limit/inFlight, (n+limit-1)/limit))
}

// syncBatches syncs plan's nodes per nodes per SyncNodesSchema activity, as
// many activities at once as keep about plan.limit nodes in flight. Each node keeps its own tries, timeout
// and result; the batch's activity heartbeats, so a dead worker is noticed
// and the batch resumed elsewhere. The activity ID names the batch's first
// and last node, and the UI shows every node's outcome in its result.
func syncBatches(ctx workflow.Context, plan syncPlan, per int) {
	nodes, out, target, limit := plan.nodes, plan.out, plan.target, plan.limit
	wid := workflow.GetInfo(ctx).WorkflowExecution.ID
	batches := (len(nodes) + per - 1) / per
	started := make([]time.Time, batches)
	bounds := func(b int) (int, int) { return b * per, min(len(nodes), (b+1)*per) }
	fanOut(ctx, batches, max(1, limit/per), func(b int) workflow.Future {
		lo, hi := bounds(b)
		started[b] = workflow.Now(ctx)
		for i := lo; i < hi; i++ {
			out[i].Status = NodeSyncing
		}
		bctx := workflow.WithActivityOptions(ctx, batchOptions(fmt.Sprintf("sync-%s..%s", nodes[lo].Name, nodes[hi-1].Name)))
		return workflow.ExecuteActivity(bctx, domain.SyncNodesSchemaName, domain.SyncNodesParams{
			Nodes: nodes[lo:hi], Target: target, WorkflowID: wid,
		})
	}, func(b int, f workflow.Future) {
		lo, hi := bounds(b)
		var res domain.SyncNodesResult
		if err := f.Get(ctx, &res); err != nil || len(res.Nodes) != hi-lo {
			// The batch itself failed (every retry): the nodes it finished
			// keep their outcomes (from its last heartbeat or its error);
			// the others are pending, and caught up when they are next
			// seen healthy, unless the failure says a retry cannot help.
			status := NodePending
			if err != nil {
				status = nodeStatus(err)
			}
			done := finishedOutcomes(err)
			took := workflow.Now(ctx).Sub(started[b])
			for i := lo; i < hi; i++ {
				if o, ok := done[nodes[i].Name]; ok {
					recordOutcome(&out[i], o)
					continue
				}
				out[i].DurationMS = took.Milliseconds()
				out[i].Status, out[i].Error = status, batchError(err)
			}
			return
		}
		for k, o := range res.Nodes {
			recordOutcome(&out[lo+k], o)
		}
	})
}

// batchOptions are the activity options of one batch: long enough for
// every node's tries, with a heartbeat that notices a dead worker, and
// retries that resume the batch where its last heartbeat left it.
func batchOptions(activityID string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		ActivityID:          activityID,
		StartToCloseTimeout: 15 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        15 * time.Second,
			MaximumAttempts:        4,
			NonRetryableErrorTypes: []string{domain.ErrTypeInvalid},
		},
	}
}

// finishedOutcomes are the outcomes a failed batch had finished, by node:
// the details of its error (it was cut short) or of its last heartbeat (it
// timed out).
func finishedOutcomes(err error) map[string]domain.NodeSyncOutcome {
	var outcomes []domain.NodeSyncOutcome
	var appErr *temporal.ApplicationError
	var timeout *temporal.TimeoutError
	switch {
	case errors.As(err, &appErr) && appErr.HasDetails():
		_ = appErr.Details(&outcomes)
	case errors.As(err, &timeout) && timeout.HasLastHeartbeatDetails():
		_ = timeout.LastHeartbeatDetails(&outcomes)
	}
	done := make(map[string]domain.NodeSyncOutcome, len(outcomes))
	for _, o := range outcomes {
		done[o.Name] = o
	}
	return done
}

func batchError(err error) string {
	if err == nil {
		return "the batch returned no outcome for its nodes"
	}
	return rootMessage(err)
}

// recordOutcome fills a node's result from its outcome in a batch, with the
// statuses a per-node activity's error would give (see nodeStatus).
func recordOutcome(n *NodeSyncResult, o domain.NodeSyncOutcome) {
	n.DurationMS = o.DurationMS
	if o.Synced() {
		n.Status, n.From, n.To, n.Applied = NodeSynced, o.Result.From, o.Result.To, o.Result.Applied
		if n.Applied == nil {
			n.Applied = []domain.MigrationResult{}
		}
		return
	}
	n.Error = o.Error
	switch o.ErrType {
	case domain.ErrTypeDrift:
		n.Status = NodeDrift
	case domain.ErrTypeInvalid:
		n.Status = NodeFailed
	default:
		n.Status = NodePending
	}
}
