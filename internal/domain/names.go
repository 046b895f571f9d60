package domain

// Activity names, stable across renames of the Go methods: workers register
// each activity under its name, and workflows call it by that name.
const (
	ApplyHubSchemaName  = "ApplyHubSchema"
	ListSyncTargetsName = "ListSyncTargets"
	SyncNodeSchemaName  = "SyncNodeSchema"
	SyncNodesSchemaName = "SyncNodesSchema"
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
	// ErrTypeBatchInterrupted: a batch of nodes ended before all of them
	// finished; its details are the outcomes of those that did.
	ErrTypeBatchInterrupted = "BatchInterrupted"
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

// Activity names of node benchmarks.
const (
	BenchmarkNodeName    = "BenchmarkNode"
	RecordBenchmarksName = "RecordBenchmarks"
)
