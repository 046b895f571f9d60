// Package activities holds the hub's Temporal activities: every side effect
// of the federation's workflows (libp2p messages to nodes, ClickHouse and
// PostgreSQL work). Activities are methods on structs that receive their
// dependencies in a constructor, registered once under the names below.
package activities

// Activity names, stable across renames of the Go methods.
const (
	ApplyHubSchemaName  = "ApplyHubSchema"
	ListSyncTargetsName = "ListSyncTargets"
	SyncNodeSchemaName  = "SyncNodeSchema"
	HealthSweepName     = "HealthSweep"
	RecordHealthName    = "RecordHealth"
	// Catalog and ontology sync.
	SyncNodeCatalogName  = "SyncNodeCatalog"
	PrepareOntologyName  = "PrepareOntology"
	SyncNodeOntologyName = "SyncNodeOntology"
)

// Application error types that must not be retried.
const (
	ErrTypeDrift   = "SchemaDrift"
	ErrTypeInvalid = "InvalidRequest"
)

// Activity names of analytics jobs.
const (
	StartJobName     = "StartJob"
	JobTargetsName   = "JobTargets"
	NodeAnalysisName = "NodeAnalysis"
	MergeJobName     = "MergeJob"
	FinishJobName    = "FinishJob"
)

// Activity names of ETL jobs.
const (
	EtlTargetName       = "EtlTarget"
	ValidateStagedName  = "ValidateStaged"
	LoadStagedName      = "LoadStaged"
	RegisterDatasetName = "RegisterDataset"
	DeleteStagedName    = "DeleteStaged"
	RefreshCatalogName  = "RefreshCatalog"
)
