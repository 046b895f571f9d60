package workers

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/workflows"
)

// Activities are the hub's activity structs, each built once with its
// dependencies (Hub.activities) and registered by Register.
type Activities struct {
	Schema   *activities.Schema
	Health   *activities.Health
	Catalog  *activities.Catalog
	Ontology *activities.Ontology
	Jobs     *activities.Jobs
}

// Register registers every workflow and every activity on w, each under its
// explicit name (workflows/names.go, activities/names.go).
func Register(w worker.Registry, a Activities) {
	workflows.Register(w)
	for _, r := range []struct {
		name string
		fn   any
	}{
		{activities.HealthSweepName, a.Health.HealthSweep},
		{activities.RecordHealthName, a.Health.RecordHealth},
		{activities.ApplyHubSchemaName, a.Schema.ApplyHubSchema},
		{activities.ListSyncTargetsName, a.Schema.ListSyncTargets},
		{activities.SyncNodeSchemaName, a.Schema.SyncNodeSchema},
		{activities.SyncNodeCatalogName, a.Catalog.SyncNodeCatalog},
		{activities.PrepareOntologyName, a.Ontology.PrepareOntology},
		{activities.SyncNodeOntologyName, a.Ontology.SyncNodeOntology},
		{activities.StartJobName, a.Jobs.StartJob},
		{activities.JobTargetsName, a.Jobs.JobTargets},
		{activities.NodeAnalysisName, a.Jobs.NodeAnalysis},
		{activities.MergeJobName, a.Jobs.MergeJob},
		{activities.FinishJobName, a.Jobs.FinishJob},
		{activities.EtlTargetName, a.Jobs.EtlTarget},
		{activities.ValidateStagedName, a.Jobs.ValidateStaged},
		{activities.LoadStagedName, a.Jobs.LoadStaged},
		{activities.RegisterDatasetName, a.Jobs.RegisterDataset},
		{activities.DeleteStagedName, a.Jobs.DeleteStaged},
		{activities.RefreshCatalogName, a.Jobs.RefreshCatalog},
	} {
		w.RegisterActivityWithOptions(r.fn, activity.RegisterOptions{Name: r.name})
	}
}

// activities builds every activity struct of the hub: the one place their
// dependencies are wired.
func (h *Hub) activities(st *store.Store, wh driver.Conn, nodes *p2p.Client, tc client.Client) Activities {
	cfg := h.cfg
	startCatchUp := func(ctx context.Context, node string, target int) error {
		_, err := workflows.StartSchemaCatchUp(ctx, tc, node, target)
		return err
	}
	jobs := activities.NewJobs(st, nodes, h.s3, cfg.S3.ResultsBucket, cfg.S3.StagingBucket, h.migs, h.log)
	jobs.SetWarehouse(wh)
	jobs.SetUploadLimits(activities.UploadLimits{MaxUploadBytes: cfg.ETL.MaxUploadBytes, MaxCellBytes: cfg.ETL.MaxCellBytes,
		MaxRowBytes: cfg.ETL.MaxRowBytes, MaxPageBytes: cfg.ETL.MaxPageBytes, MaxColumnChunkBytes: cfg.ETL.MaxColumnChunkBytes,
		MinRowBytes: cfg.ETL.MinRowBytes, MaxBatchBytes: cfg.ETL.MaxBatchBytes})
	jobs.SetCatalogRefresh(func(ctx context.Context, node string) error {
		_, err := workflows.StartNodeCatalogSync(ctx, tc, node, false)
		return err
	})
	return Activities{
		Schema: activities.NewSchema(st, wh, nodes, h.migs, h.log),
		Health: activities.NewHealth(st, nodes, startCatchUp,
			activities.HealthOptions{Concurrency: cfg.Health.Concurrency, PingTimeout: cfg.Health.PingTimeout}, h.log),
		Catalog:  activities.NewCatalog(st, nodes),
		Ontology: activities.NewOntology(st, nodes, h.onto),
		Jobs:     jobs,
	}
}
