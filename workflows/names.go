// Package workflows holds the hub's Temporal workflows. Everything here is
// deterministic: side effects live in package activities, and the code here
// only orders them. Typed start helpers (start.go) are what the API calls.
package workflows

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// TaskQueue is the hub's task queue; `syndb worker` polls it.
const TaskQueue = "syndb-hub"

// Workflow type names, stable across renames of the Go functions.
const (
	SchemaSyncName    = "SchemaSync"
	HealthMonitorName = "HealthMonitor"
	CatalogSyncName   = "CatalogSync"
	OntologySyncName  = "OntologySync"
	NodeBenchmarkName = "NodeBenchmark"
)

// HealthMonitorID is the workflow ID of the hub's one health monitor.
const HealthMonitorID = "health-monitor"

// Signal names.
const (
	// SweepNowSignal asks the health monitor for a sweep at once.
	SweepNowSignal = "sweep-now"
)

// Query names.
const (
	// ProgressQuery returns a workflow's result as it stands so far.
	ProgressQuery = "progress"
	// HealthQuery returns the health monitor's table of node states.
	HealthQuery = "health"
)

// Search attributes, so runs can be filtered in the Temporal UI and CLI
// (`temporal workflow list --query 'SyndbOutcome="partial"'`).
var (
	// TargetVersionKey is the schema version a sync brings nodes to.
	TargetVersionKey = temporal.NewSearchAttributeKeyInt64("SyndbTargetVersion")
	// NodeCountKey is the number of nodes a run works on.
	NodeCountKey = temporal.NewSearchAttributeKeyInt64("SyndbNodeCount")
	// OutcomeKey is how the run ended: running, complete, partial or failed.
	OutcomeKey = temporal.NewSearchAttributeKeyKeyword("SyndbOutcome")
)

// SearchAttributes are the custom search attributes the workflows use, by
// name, with their types; the worker registers them at start.
var SearchAttributes = map[string]enumspb.IndexedValueType{
	TargetVersionKey.GetName(): enumspb.INDEXED_VALUE_TYPE_INT,
	NodeCountKey.GetName():     enumspb.INDEXED_VALUE_TYPE_INT,
	OutcomeKey.GetName():       enumspb.INDEXED_VALUE_TYPE_KEYWORD,
}

// SchemaSyncID is the workflow ID of the sync to target version v: one
// business key per target, so concurrent requests for it join one run.
func SchemaSyncID(v int) string { return fmt.Sprintf("schema-sync-v%d", v) }

// SchemaCatchUpID is the workflow ID of the catch-up of one node to target
// version v: one run per node and target, however often the node registers.
func SchemaCatchUpID(node string, v int) string { return fmt.Sprintf("schema-catchup-%s-v%d", node, v) }

// Catalog sync IDs: one on-demand sync of the fleet at a time
// (CatalogSyncID), the schedule's runs (its ID, then
// CatalogScheduledID and the time Temporal appends), and one sync per
// registering node (NodeCatalogSyncID).
const (
	CatalogSyncID      = "catalog-sync"
	CatalogScheduleID  = "catalog-sync"
	CatalogScheduledID = "catalog-sync-scheduled"
)

// NodeCatalogSyncID is the workflow ID of the catalog sync of one node.
func NodeCatalogSyncID(node string) string { return "catalog-sync-node-" + node }

// OntologySyncID is the workflow ID of the sync of ontology version v.
func OntologySyncID(v int) string { return fmt.Sprintf("ontology-sync-v%d", v) }

// OntologyCatchUpID is the workflow ID of the ontology catch-up of one node
// to version v.
func OntologyCatchUpID(node string, v int) string {
	return fmt.Sprintf("ontology-catchup-%s-v%d", node, v)
}

// Node benchmark IDs: one on-demand run at a time (BenchmarkID), and the
// schedule's runs (its ID, then BenchmarkScheduledID and the time Temporal
// appends).
const (
	BenchmarkID          = "node-benchmark"
	BenchmarkScheduleID  = "node-benchmark"
	BenchmarkScheduledID = "node-benchmark-scheduled"
)

// WorkflowRegistry is where workflows are registered: a worker or a replayer.
type WorkflowRegistry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// Register registers every workflow under its explicit name.
func Register(r WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(SchemaSync, workflow.RegisterOptions{Name: SchemaSyncName})
	r.RegisterWorkflowWithOptions(HealthMonitor, workflow.RegisterOptions{Name: HealthMonitorName})
	r.RegisterWorkflowWithOptions(CatalogSync, workflow.RegisterOptions{Name: CatalogSyncName})
	r.RegisterWorkflowWithOptions(OntologySync, workflow.RegisterOptions{Name: OntologySyncName})
	r.RegisterWorkflowWithOptions(NodeBenchmark, workflow.RegisterOptions{Name: NodeBenchmarkName})
	r.RegisterWorkflowWithOptions(AnalyticsJob, workflow.RegisterOptions{Name: AnalyticsJobName})
	r.RegisterWorkflowWithOptions(EtlJob, workflow.RegisterOptions{Name: EtlJobName})
	r.RegisterWorkflowWithOptions(MeshIngest, workflow.RegisterOptions{Name: MeshIngestName})
}
