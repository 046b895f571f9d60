package workflows

import (
	"errors"
	"time"

	"github.com/syndb/federation/internal/domain"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// fanOut calls start for 0..n-1 with at most limit futures pending at once,
// and done with each future as it completes, in completion order. Each
// item is its own activity with its own retries, so one slow node holds up
// no other.
func fanOut(ctx workflow.Context, n, limit int, start func(i int) workflow.Future, done func(i int, f workflow.Future)) {
	if limit <= 0 {
		limit = DefaultSyncConcurrency
	}
	sel := workflow.NewSelector(ctx)
	inflight, next := 0, 0
	for next < n || inflight > 0 {
		for inflight < limit && next < n {
			i := next
			sel.AddFuture(start(i), func(f workflow.Future) {
				inflight--
				done(i, f)
			})
			inflight++
			next++
		}
		sel.Select(ctx)
	}
}

// nodeStatus classifies a node activity's failure: drift and invalid
// requests are not retried and are reported as such; anything else means
// the node could not be reached for now (pending: caught up later).
func nodeStatus(err error) string {
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &appErr) && appErr.Type() == domain.ErrTypeDrift:
		return NodeDrift
	case errors.As(err, &appErr) && appErr.Type() == domain.ErrTypeInvalid:
		return NodeFailed
	default:
		return NodePending
	}
}

// nodeTally counts a fan-out's nodes by status.
type nodeTally struct{ synced, pending, drift, failed int }

// tally counts nodes by the status each has: synced, pending, drift, and
// any other status as failed.
func tally[T any](nodes []T, status func(T) string) nodeTally {
	var t nodeTally
	for _, n := range nodes {
		switch status(n) {
		case NodeSynced:
			t.synced++
		case NodePending:
			t.pending++
		case NodeDrift:
			t.drift++
		default:
			t.failed++
		}
	}
	return t
}

// outcome is the run's SyndbOutcome: complete when every node synced.
func (t nodeTally) outcome() string {
	if t.pending+t.drift+t.failed > 0 {
		return OutcomePartial
	}
	return OutcomeComplete
}

// listOptions are the activity options of the short hub-side steps of a
// sync (listing nodes, preparing what to send).
func listOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        10,
			NonRetryableErrorTypes: []string{domain.ErrTypeInvalid},
		},
	}
}

// nodeOptions are the activity options of one node's part of a catalog or
// ontology sync: those of schema sync's nodes. activityID names the node's
// activity so the UI lists each node on its own. A catch-up is patient: its
// node has just registered, so it is up, but it may still be catching up on
// its schema (the ontology tables, a new node's datasets table), so it is
// retried for minutes rather than seconds.
func nodeOptions(activityID string, catchUp bool) workflow.ActivityOptions {
	retry := &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        15 * time.Second,
		MaximumAttempts:        4,
		NonRetryableErrorTypes: []string{domain.ErrTypeDrift, domain.ErrTypeInvalid},
	}
	if catchUp {
		retry.MaximumInterval, retry.MaximumAttempts = 30*time.Second, 12
	}
	return workflow.ActivityOptions{
		ActivityID:          activityID,
		StartToCloseTimeout: 3 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy:         retry,
	}
}
