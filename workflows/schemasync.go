package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/syndb/federation/internal/domain"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// DefaultSyncConcurrency bounds a sync's fan-out when the params leave it 0:
// far below Temporal's 2,000 pending activities per execution.
const DefaultSyncConcurrency = 32

// SchemaSyncParams is the input of the schema sync workflow.
type SchemaSyncParams struct {
	// Target is the schema version every warehouse must reach.
	Target int `json:"target"`
	// Concurrency bounds how many nodes are synced at once.
	Concurrency int `json:"concurrency,omitempty"`
	// Nodes limits the sync to these nodes (all active nodes when empty).
	Nodes []string `json:"nodes,omitempty"`
	// CatchUp marks a sync that only brings nodes that were away up to the
	// fleet's target, which it leaves as it is.
	CatchUp bool `json:"catch_up,omitempty"`
}

// Sync outcomes, in the SyndbOutcome search attribute.
const (
	OutcomeRunning  = "running"
	OutcomeComplete = "complete" // every node synced
	OutcomePartial  = "partial"  // some node pending, in drift or failed
	OutcomeFailed   = "failed"   // the hub warehouse could not be migrated
)

// Workflow changes, for workflow.GetVersion.
const (
	// changeNodeActivities: per-node activity IDs, heartbeats, search
	// attributes, and syncs limited to some nodes.
	changeNodeActivities = "node-activities"
	// changeBatchedNodes: a fleet larger than the concurrency bound is
	// synced in batches of nodes per activity (SyncNodesSchema).
	changeBatchedNodes = "batched-node-syncs"
)

// Node sync outcomes.
const (
	NodeQueued  = "queued"
	NodeSyncing = "syncing"
	NodeSynced  = "synced"
	NodePending = "pending" // unreachable for now; caught up later
	NodeDrift   = "drift"   // the node's ledger disagrees with the hub's migrations
	NodeFailed  = "failed"
)

// NodeSyncResult is one node's part of a sync.
type NodeSyncResult struct {
	Name       string                   `json:"name"`
	Status     string                   `json:"status"`
	From       int                      `json:"from"`
	To         int                      `json:"to"`
	Applied    []domain.MigrationResult `json:"applied"`
	Error      string                   `json:"error,omitempty"`
	DurationMS int64                    `json:"duration_ms"`
}

// SchemaSyncResult is the output (and, while running, the progress) of a sync.
type SchemaSyncResult struct {
	Target  int                   `json:"target"`
	Hub     domain.ApplyHubResult `json:"hub"`
	Nodes   []NodeSyncResult      `json:"nodes"`
	Synced  int                   `json:"synced"`
	Pending int                   `json:"pending"`
	Drift   int                   `json:"drift"`
	Failed  int                   `json:"failed"`
}

// SchemaSync applies the pending migrations to the hub warehouse, then sends
// SchemaSync to every active node in parallel (bounded), each node its own
// activity with its own retries, and reports per node. A node that cannot be
// reached does not fail the run: it is reported pending.
func SchemaSync(ctx workflow.Context, p SchemaSyncParams) (SchemaSyncResult, error) {
	log := workflow.GetLogger(ctx)
	res := SchemaSyncResult{Target: p.Target, Nodes: []NodeSyncResult{}}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (SchemaSyncResult, error) { return res, nil }); err != nil {
		return res, fmt.Errorf("register progress query: %w", err)
	}
	if p.Target < 1 {
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("target version %d must be at least 1", p.Target), domain.ErrTypeInvalid, nil)
	}
	limit := p.Concurrency
	if limit <= 0 {
		limit = DefaultSyncConcurrency
	}
	v2 := workflow.GetVersion(ctx, changeNodeActivities, workflow.DefaultVersion, 1) >= 1

	hubCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        10,
			NonRetryableErrorTypes: []string{domain.ErrTypeDrift, domain.ErrTypeInvalid},
		},
	})
	hubParams := domain.ApplyHubParams{Target: p.Target, CatchUp: p.CatchUp}
	if err := workflow.ExecuteActivity(hubCtx, domain.ApplyHubSchemaName, hubParams).Get(ctx, &res.Hub); err != nil {
		if v2 {
			upsertOutcome(ctx, OutcomeFailed)
		}
		return res, fmt.Errorf("migrate hub warehouse: %w", err)
	}
	var nodes []domain.NodeRef
	if err := workflow.ExecuteActivity(hubCtx, domain.ListSyncTargetsName).Get(ctx, &nodes); err != nil {
		if v2 {
			upsertOutcome(ctx, OutcomeFailed)
		}
		return res, fmt.Errorf("list nodes: %w", err)
	}
	nodes = only(nodes, p.Nodes)
	if v2 {
		if err := workflow.UpsertTypedSearchAttributes(ctx, NodeCountKey.ValueSet(int64(len(nodes)))); err != nil {
			return res, fmt.Errorf("set search attributes: %w", err)
		}
	}
	for _, n := range nodes {
		res.Nodes = append(res.Nodes, NodeSyncResult{Name: n.Name, Status: NodeQueued, From: n.SchemaVersion, To: n.SchemaVersion})
	}
	log.Info("syncing nodes", "target", p.Target, "nodes", len(nodes), "concurrency", limit)

	nodeOpts := workflow.ActivityOptions{
		StartToCloseTimeout: 3 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        15 * time.Second,
			MaximumAttempts:        4,
			NonRetryableErrorTypes: []string{domain.ErrTypeDrift, domain.ErrTypeInvalid},
		},
	}
	if v2 {
		// A worker that dies mid-call is noticed within the heartbeat
		// timeout, and the node's sync retried on another worker.
		nodeOpts.HeartbeatTimeout = 20 * time.Second
	}
	plan := syncPlan{nodes: nodes, limit: limit, target: p.Target, v2: v2, nodeOpts: nodeOpts, out: res.Nodes}
	batched := workflow.GetVersion(ctx, changeBatchedNodes, workflow.DefaultVersion, 1) >= 1
	if per := nodesPerActivity(len(nodes), limit); batched && per > 1 {
		syncBatches(ctx, plan, per)
	} else {
		syncEach(ctx, plan)
	}
	t := tally(res.Nodes, func(n NodeSyncResult) string { return n.Status })
	res.Synced, res.Pending, res.Drift, res.Failed = t.synced, t.pending, t.drift, t.failed
	if v2 {
		upsertOutcome(ctx, t.outcome())
	}
	log.Info("schema sync finished", "target", p.Target, "synced", res.Synced, "pending", res.Pending, "drift", res.Drift, "failed", res.Failed)
	return res, nil
}

// syncPlan is what a sync sends to its nodes.
type syncPlan struct {
	nodes  []domain.NodeRef
	limit  int // nodes in flight at once
	target int
	// v2 and nodeOpts are the per-node activities' version and options.
	v2       bool
	nodeOpts workflow.ActivityOptions
	// out receives one result per node, in nodes' order.
	out []NodeSyncResult
}

// syncEach syncs every node of plan in its own SyncNodeSchema activity, at
// most plan.limit at once.
func syncEach(ctx workflow.Context, plan syncPlan) {
	nodes, out, target := plan.nodes, plan.out, plan.target
	wid := workflow.GetInfo(ctx).WorkflowExecution.ID
	started := make([]time.Time, len(nodes))
	fanOut(ctx, len(nodes), plan.limit, func(i int) workflow.Future {
		started[i] = workflow.Now(ctx)
		out[i].Status = NodeSyncing
		opts := plan.nodeOpts
		if plan.v2 {
			// The node's name as activity ID: the UI lists each node's sync.
			opts.ActivityID = "sync-" + nodes[i].Name
		}
		nodeCtx := workflow.WithActivityOptions(ctx, opts)
		return workflow.ExecuteActivity(nodeCtx, domain.SyncNodeSchemaName, domain.SyncNodeParams{
			Node: nodes[i], Target: target, WorkflowID: wid,
		})
	}, func(i int, f workflow.Future) {
		recordNodeSync(ctx, &out[i], f, workflow.Now(ctx).Sub(started[i]))
	})
}

// only keeps the nodes named in names, all of them when names is empty.
func only(nodes []domain.NodeRef, names []string) []domain.NodeRef {
	if len(names) == 0 {
		return nodes
	}
	out := make([]domain.NodeRef, 0, len(names))
	for _, n := range nodes {
		if slices.Contains(names, n.Name) {
			out = append(out, n)
		}
	}
	return out
}

// upsertOutcome records how the run ended in its search attributes. A
// failure to do so is logged, not fatal: the run's result is what counts.
func upsertOutcome(ctx workflow.Context, outcome string) {
	if err := workflow.UpsertTypedSearchAttributes(ctx, OutcomeKey.ValueSet(outcome)); err != nil {
		workflow.GetLogger(ctx).Warn("set outcome search attribute", "err", err)
	}
}

// recordNodeSync fills a node's result from its finished SyncNodeSchema.
func recordNodeSync(ctx workflow.Context, n *NodeSyncResult, f workflow.Future, took time.Duration) {
	n.DurationMS = took.Milliseconds()
	var out domain.SyncNodeResult
	err := f.Get(ctx, &out)
	if err == nil {
		n.Status, n.From, n.To, n.Applied = NodeSynced, out.From, out.To, out.Applied
		if n.Applied == nil {
			n.Applied = []domain.MigrationResult{}
		}
		return
	}
	n.Status, n.Error = nodeStatus(err), rootMessage(err)
}

// rootMessage returns the innermost error's message: the activity's own words
// without Temporal's wrapping.
func rootMessage(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
