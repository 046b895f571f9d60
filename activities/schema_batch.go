package activities

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/wire"
)

// Bounds of a batch's per-node tries when its params leave them 0: those
// of the per-node activity (its retry policy's attempts and backoff, its
// start-to-close timeout per try).
const (
	defaultSyncAttempts   = 4
	defaultSyncTryTimeout = 3 * time.Minute
	syncRetryInitial      = time.Second
	syncRetryMax          = 15 * time.Second
)

// SyncNodesSchema syncs a batch of nodes at once, each as SyncNodeSchema
// would: its own tries (Attempts, with backoff) and timeout per try, and
// its own outcome, so one node that cannot be reached holds up no other of
// the batch. It fails only when it is cancelled or times out; a retry then
// resumes from its last heartbeat, whose details are the outcomes so far,
// and does not sync those nodes again.
func (a *Schema) SyncNodesSchema(ctx context.Context, p domain.SyncNodesParams) (domain.SyncNodesResult, error) {
	if err := a.checkTarget(p.Target); err != nil {
		return domain.SyncNodesResult{}, err
	}
	if p.Attempts < 1 {
		p.Attempts = defaultSyncAttempts
	}
	if p.TryTimeout <= 0 {
		p.TryTimeout = defaultSyncTryTimeout
	}
	done := map[string]domain.NodeSyncOutcome{}
	if activity.HasHeartbeatDetails(ctx) {
		var prev []domain.NodeSyncOutcome
		if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil {
			for _, o := range prev {
				done[o.Name] = o
			}
		}
	}
	out := make([]domain.NodeSyncOutcome, len(p.Nodes))
	var mu sync.Mutex
	var finished []domain.NodeSyncOutcome
	for _, o := range done {
		finished = append(finished, o)
	}
	stop := heartbeat(ctx, func() any {
		mu.Lock()
		defer mu.Unlock()
		return append([]domain.NodeSyncOutcome(nil), finished...)
	})
	req := a.syncRequest(p.Target) // the same for every node, read only
	var wg sync.WaitGroup
	for i, n := range p.Nodes {
		if o, ok := done[n.Name]; ok {
			out[i] = o
			continue
		}
		wg.Go(func() {
			o := a.syncWithTries(ctx, n, req, p)
			if ctx.Err() != nil && !o.Synced() {
				return // cut short by the batch's end: not this node's outcome
			}
			mu.Lock()
			out[i] = o
			finished = append(finished, o)
			mu.Unlock()
		})
	}
	wg.Wait()
	stop()
	if len(finished) == len(p.Nodes) {
		return domain.SyncNodesResult{Nodes: out}, nil
	}
	// Cancelled or timed out before every node finished: the outcomes so
	// far travel with the error, so the workflow reports them.
	return domain.SyncNodesResult{}, temporal.NewApplicationErrorWithCause("schema sync batch ended before every node finished",
		domain.ErrTypeBatchInterrupted, ctx.Err(), finished)
}

// syncWithTries syncs one node of a batch, trying again after an error a
// retry can mend, and returns its outcome.
func (a *Schema) syncWithTries(ctx context.Context, n domain.NodeRef, req *wire.SchemaSyncRequest, p domain.SyncNodesParams) domain.NodeSyncOutcome {
	start := time.Now()
	o := domain.NodeSyncOutcome{Name: n.Name}
	wait := syncRetryInitial
	for o.Attempts < p.Attempts {
		o.Attempts++
		tryCtx, cancel := context.WithTimeout(ctx, p.TryTimeout)
		res, err := a.syncNode(tryCtx, n, req, p.WorkflowID)
		cancel()
		if err == nil {
			o.Result, o.Error, o.ErrType = res, "", ""
			break
		}
		o.Error, o.ErrType = err.Error(), ""
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.NonRetryable() {
			o.Error, o.ErrType = appErr.Message(), appErr.Type()
			break
		}
		if o.Attempts == p.Attempts || !sleep(ctx, wait) {
			break
		}
		wait = min(2*wait, syncRetryMax)
	}
	o.DurationMS = time.Since(start).Milliseconds()
	return o
}

// sleep waits d, or less if ctx ends first; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
