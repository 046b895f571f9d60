package workflows

import (
	"fmt"

	"github.com/syndb/federation/internal/domain"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// OntologySyncParams is the input of the ontology sync workflow.
type OntologySyncParams struct {
	// Version is the ontology version to push: the hub's.
	Version int `json:"version"`
	// Concurrency bounds how many nodes are synced at once.
	Concurrency int `json:"concurrency,omitempty"`
	// Nodes limits the sync to these nodes (all active nodes when empty).
	Nodes []string `json:"nodes,omitempty"`
	// CatchUp marks a sync that only brings nodes that were away up to the
	// fleet's ontology, which it leaves as it is.
	CatchUp bool `json:"catch_up,omitempty"`
}

// NodeOntologyResult is one node's part of an ontology sync.
type NodeOntologyResult struct {
	Name         string `json:"name"`
	Status       string `json:"status"`
	From         int    `json:"from"`
	To           int    `json:"to"`
	TermsWritten int    `json:"terms_written"`
	Error        string `json:"error,omitempty"`
	DurationMS   int64  `json:"duration_ms"`
}

// OntologySyncResult is the output (and, while running, the progress) of an
// ontology sync.
type OntologySyncResult struct {
	Version  int                  `json:"version"`
	Checksum string               `json:"checksum"`
	Terms    int                  `json:"terms"`
	Nodes    []NodeOntologyResult `json:"nodes"`
	Synced   int                  `json:"synced"`
	Pending  int                  `json:"pending"`
	Drift    int                  `json:"drift"`
	Failed   int                  `json:"failed"`
}

// OntologySync pushes the hub's ontology at Version to every active node
// with the fan-out, partial-result and catch-up rules of schema sync: each
// node is its own activity with its own retries, at most Concurrency at
// once; a node that cannot be reached is reported pending and is caught up
// when it registers again; a node that holds the version with other
// content is reported in drift and left untouched.
func OntologySync(ctx workflow.Context, p OntologySyncParams) (OntologySyncResult, error) {
	log := workflow.GetLogger(ctx)
	res := OntologySyncResult{Version: p.Version, Nodes: []NodeOntologyResult{}}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (OntologySyncResult, error) { return res, nil }); err != nil {
		return res, fmt.Errorf("register progress query: %w", err)
	}
	if p.Version < 1 {
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("ontology version %d must be at least 1", p.Version), domain.ErrTypeInvalid, nil)
	}
	hubCtx := workflow.WithActivityOptions(ctx, listOptions())
	var prep domain.PrepareOntologyResult
	if err := workflow.ExecuteActivity(hubCtx, domain.PrepareOntologyName, domain.PrepareOntologyParams{Version: p.Version, CatchUp: p.CatchUp}).Get(ctx, &prep); err != nil {
		upsertOutcome(ctx, OutcomeFailed)
		return res, fmt.Errorf("prepare ontology v%d: %w", p.Version, err)
	}
	res.Checksum, res.Terms = prep.Checksum, prep.Terms
	var nodes []domain.NodeRef
	if err := workflow.ExecuteActivity(hubCtx, domain.ListSyncTargetsName).Get(ctx, &nodes); err != nil {
		upsertOutcome(ctx, OutcomeFailed)
		return res, fmt.Errorf("list nodes: %w", err)
	}
	nodes = only(nodes, p.Nodes)
	if err := workflow.UpsertTypedSearchAttributes(ctx, NodeCountKey.ValueSet(int64(len(nodes)))); err != nil {
		return res, fmt.Errorf("set search attributes: %w", err)
	}
	for _, n := range nodes {
		res.Nodes = append(res.Nodes, NodeOntologyResult{Name: n.Name, Status: NodeQueued})
	}
	log.Info("syncing ontology", "version", p.Version, "terms", prep.Terms, "nodes", len(nodes), "concurrency", p.Concurrency)
	wid := workflow.GetInfo(ctx).WorkflowExecution.ID
	started := make([]int64, len(nodes))
	fanOut(ctx, len(nodes), p.Concurrency, func(i int) workflow.Future {
		started[i] = workflow.Now(ctx).UnixMilli()
		res.Nodes[i].Status = NodeSyncing
		nodeCtx := workflow.WithActivityOptions(ctx, nodeOptions("ontology-"+nodes[i].Name, p.CatchUp))
		return workflow.ExecuteActivity(nodeCtx, domain.SyncNodeOntologyName, domain.SyncNodeOntologyParams{
			Node: nodes[i], Version: p.Version, WorkflowID: wid,
		})
	}, func(i int, f workflow.Future) {
		n := &res.Nodes[i]
		n.DurationMS = workflow.Now(ctx).UnixMilli() - started[i]
		var out domain.SyncNodeOntologyResult
		if err := f.Get(ctx, &out); err != nil {
			n.Status, n.Error = nodeStatus(err), rootMessage(err)
			return
		}
		n.Status, n.From, n.To, n.TermsWritten = NodeSynced, out.From, out.To, out.TermsWritten
	})
	t := tally(res.Nodes, func(n NodeOntologyResult) string { return n.Status })
	res.Synced, res.Pending, res.Drift, res.Failed = t.synced, t.pending, t.drift, t.failed
	upsertOutcome(ctx, t.outcome())
	log.Info("ontology sync finished", "version", p.Version, "synced", res.Synced, "pending", res.Pending,
		"drift", res.Drift, "failed", res.Failed)
	return res, nil
}
