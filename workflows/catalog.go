package workflows

import (
	"fmt"

	"github.com/syndb/federation/internal/domain"
	"go.temporal.io/sdk/workflow"
)

// CatalogSyncParams is the input of the catalog sync workflow.
type CatalogSyncParams struct {
	// Concurrency bounds how many nodes are asked at once.
	Concurrency int `json:"concurrency,omitempty"`
	// Nodes limits the sync to these nodes (all active nodes when empty).
	Nodes []string `json:"nodes,omitempty"`
	// CatchUp marks the sync of a node that has just registered: it is
	// retried longer, since the node may still be catching up on its schema.
	CatchUp bool `json:"catch_up,omitempty"`
}

// NodeCatalogResult is one node's part of a catalog sync.
type NodeCatalogResult struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	Datasets   int    `json:"datasets"`
	Added      int    `json:"added"`
	Updated    int    `json:"updated"`
	Removed    int    `json:"removed"`
	Skipped    int    `json:"skipped,omitempty"`
	Rows       uint64 `json:"rows"`
	Stale      bool   `json:"stale,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// CatalogSyncResult is the output (and, while running, the progress) of a
// catalog sync.
type CatalogSyncResult struct {
	Nodes    []NodeCatalogResult `json:"nodes"`
	Synced   int                 `json:"synced"`
	Pending  int                 `json:"pending"`
	Failed   int                 `json:"failed"`
	Datasets int                 `json:"datasets"`
}

// CatalogSync asks every active node (bounded fan-out, each node its own
// activity with its own retries) for its dataset catalog with row counts
// and writes each into PostgreSQL, where it is searchable. A node that
// cannot be reached does not fail the run: it is reported pending and keeps
// the catalog of its last sync.
func CatalogSync(ctx workflow.Context, p CatalogSyncParams) (CatalogSyncResult, error) {
	log := workflow.GetLogger(ctx)
	res := CatalogSyncResult{Nodes: []NodeCatalogResult{}}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (CatalogSyncResult, error) { return res, nil }); err != nil {
		return res, fmt.Errorf("register progress query: %w", err)
	}
	var nodes []domain.NodeRef
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, listOptions()), domain.ListSyncTargetsName).Get(ctx, &nodes); err != nil {
		upsertOutcome(ctx, OutcomeFailed)
		return res, fmt.Errorf("list nodes: %w", err)
	}
	nodes = only(nodes, p.Nodes)
	if err := workflow.UpsertTypedSearchAttributes(ctx, NodeCountKey.ValueSet(int64(len(nodes)))); err != nil {
		return res, fmt.Errorf("set search attributes: %w", err)
	}
	for _, n := range nodes {
		res.Nodes = append(res.Nodes, NodeCatalogResult{Name: n.Name, Status: NodeQueued})
	}
	log.Info("syncing dataset catalogs", "nodes", len(nodes), "concurrency", p.Concurrency)
	wid := workflow.GetInfo(ctx).WorkflowExecution.ID
	started := make([]int64, len(nodes))
	fanOut(ctx, len(nodes), p.Concurrency, func(i int) workflow.Future {
		started[i] = workflow.Now(ctx).UnixMilli()
		res.Nodes[i].Status = NodeSyncing
		nodeCtx := workflow.WithActivityOptions(ctx, nodeOptions("catalog-"+nodes[i].Name, p.CatchUp))
		return workflow.ExecuteActivity(nodeCtx, domain.SyncNodeCatalogName, domain.SyncNodeCatalogParams{Node: nodes[i], WorkflowID: wid})
	}, func(i int, f workflow.Future) {
		n := &res.Nodes[i]
		n.DurationMS = workflow.Now(ctx).UnixMilli() - started[i]
		var out domain.SyncNodeCatalogResult
		if err := f.Get(ctx, &out); err != nil {
			n.Status, n.Error = nodeStatus(err), rootMessage(err)
			return
		}
		n.Status = NodeSynced
		n.Datasets, n.Added, n.Updated, n.Removed = out.Datasets, out.Added, out.Updated, out.Removed
		n.Skipped, n.Rows, n.Stale = out.Skipped, out.Rows, out.Stale
	})
	t := tally(res.Nodes, func(n NodeCatalogResult) string { return n.Status })
	// A catalog has no drift: a node's catalog either arrived or did not.
	res.Synced, res.Pending, res.Failed = t.synced, t.pending, t.failed+t.drift
	for _, n := range res.Nodes {
		if n.Status == NodeSynced {
			res.Datasets += n.Datasets
		}
	}
	upsertOutcome(ctx, t.outcome())
	log.Info("catalog sync finished", "synced", res.Synced, "pending", res.Pending, "failed", res.Failed, "datasets", res.Datasets)
	return res, nil
}
