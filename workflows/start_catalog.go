package workflows

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
)

// StartCatalogSync starts a catalog sync of the whole fleet, or joins the
// one already going (the workflow ID is fixed: CatalogSyncID). A finished
// one may run again.
func StartCatalogSync(ctx context.Context, c client.Client, p CatalogSyncParams) (Started, error) {
	p.Nodes, p.CatchUp = nil, false
	return startOrJoinRun(ctx, c, CatalogSyncID, CatalogSyncName, p)
}

// StartNodeCatalogSync starts the catalog sync of one node (after it
// registered, or after its datasets changed), or joins the one going.
// catchUp makes the node's sync patient, for a node that has just
// registered and may still be catching up on its schema.
func StartNodeCatalogSync(ctx context.Context, c client.Client, node string, catchUp bool) (Started, error) {
	return startOrJoinRun(ctx, c, NodeCatalogSyncID(node), CatalogSyncName, CatalogSyncParams{Nodes: []string{node}, CatchUp: catchUp})
}

// EnsureCatalogSchedule creates the Temporal Schedule that syncs the whole
// fleet's catalog every interval (ID CatalogScheduleID), or, when it
// exists, brings its interval to this one. Runs that would overlap a
// running one are skipped.
func EnsureCatalogSchedule(ctx context.Context, c client.Client, every time.Duration) error {
	return ensureSchedule(ctx, c, schedule{
		id:         CatalogScheduleID,
		note:       "sync every node's dataset catalog into the hub's PostgreSQL",
		workflowID: CatalogScheduledID,
		workflow:   CatalogSyncName,
		params:     CatalogSyncParams{},
	}, every)
}

// StartOntologySync starts the sync of ontology version p.Version, or joins
// the run already going for it: the workflow ID is the version. A finished
// one may run again (nodes store nothing twice).
func StartOntologySync(ctx context.Context, c client.Client, p OntologySyncParams) (Started, error) {
	p.Nodes, p.CatchUp = nil, false
	return startOrJoinRun(ctx, c, OntologySyncID(p.Version), OntologySyncName, p)
}

// StartOntologyCatchUp brings one node that was away (or is new) up to
// ontology version v, as its own run of the ontology sync workflow; a
// catch-up of that node to that version already going is joined.
func StartOntologyCatchUp(ctx context.Context, c client.Client, node string, v int) (Started, error) {
	return startOrJoinRun(ctx, c, OntologyCatchUpID(node, v), OntologySyncName,
		OntologySyncParams{Version: v, Nodes: []string{node}, CatchUp: true})
}

// StartMeshIngest starts the ingest of a compartment's mesh, or joins the
// one going for it; a finished one may run again (it writes nothing twice).
func StartMeshIngest(ctx context.Context, c client.Client, spec domain.MeshSpec) (Started, error) {
	return startOrJoinRun(ctx, c, MeshIngestID(spec), MeshIngestName, spec)
}

// startOrJoinRun starts workflowType under id, or joins the run going under
// it (conflict policy use-existing); a closed run's ID may be used again.
// Every run starts with SyndbOutcome running, and attrs.
func startOrJoinRun(ctx context.Context, c client.Client, id, workflowType string, params any,
	attrs ...temporal.SearchAttributeUpdate) (Started, error) {
	joined := false
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
	case err != nil:
		return Started{}, fmt.Errorf("describe workflow %s: %w", id, err)
	default:
		joined = desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}
	st, err := start(ctx, c, id, workflowType, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE, params,
		append(attrs, OutcomeKey.ValueSet(OutcomeRunning))...)
	st.Joined = joined
	return st, err
}
