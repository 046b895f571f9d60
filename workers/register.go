package workers

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/mesh"
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
	Etl      *activities.Etl
	// Benchmarks measures nodes and records the figures.
	Benchmarks *activities.Benchmarks
	Meshes     *activities.Meshes
}

// Register registers every workflow and every activity on w, each under its
// explicit name (workflows/names.go, activities/names.go).
func Register(w worker.Registry, a Activities) {
	workflows.Register(w)
	for _, r := range []struct {
		name string
		fn   any
	}{
		{domain.HealthSweepName, a.Health.HealthSweep},
		{domain.RecordHealthName, a.Health.RecordHealth},
		{domain.ApplyHubSchemaName, a.Schema.ApplyHubSchema},
		{domain.ListSyncTargetsName, a.Schema.ListSyncTargets},
		{domain.SyncNodeSchemaName, a.Schema.SyncNodeSchema},
		{domain.SyncNodesSchemaName, a.Schema.SyncNodesSchema},
		{domain.SyncNodeCatalogName, a.Catalog.SyncNodeCatalog},
		{domain.PrepareOntologyName, a.Ontology.PrepareOntology},
		{domain.SyncNodeOntologyName, a.Ontology.SyncNodeOntology},
		{domain.StartJobName, a.Jobs.StartJob},
		{domain.JobTargetsName, a.Jobs.JobTargets},
		{domain.NodeAnalysisName, a.Jobs.NodeAnalysis},
		{domain.MergeJobName, a.Jobs.MergeJob},
		{domain.FinishJobName, a.Jobs.FinishJob},
		{domain.EtlTargetName, a.Etl.EtlTarget},
		{domain.ValidateStagedName, a.Etl.ValidateStaged},
		{domain.LoadStagedName, a.Etl.LoadStaged},
		{domain.RegisterDatasetName, a.Etl.RegisterDataset},
		{domain.DeleteStagedName, a.Etl.DeleteStaged},
		{domain.RefreshCatalogName, a.Etl.RefreshCatalog},
		{domain.BenchmarkNodeName, a.Benchmarks.BenchmarkNode},
		{domain.RecordBenchmarksName, a.Benchmarks.RecordBenchmarks},
		{domain.MeshTargetName, a.Meshes.MeshTarget},
		{domain.CheckMeshRowName, a.Meshes.CheckMeshRow},
		{domain.ReadMeshName, a.Meshes.ReadMesh},
		{domain.StoreMeshName, a.Meshes.StoreMesh},
		{domain.WriteMeshMetricsName, a.Meshes.WriteMeshMetrics},
		{domain.RecordMeshName, a.Meshes.RecordMesh},
		{domain.DeleteStagedMeshName, a.Meshes.DeleteStagedMesh},
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
	jobs := activities.NewJobs(activities.JobsDeps{Store: st, Nodes: nodes, Results: h.s3, Bucket: cfg.S3.ResultsBucket,
		Migrations: h.migs, Log: h.log})
	etl := activities.NewEtl(activities.EtlDeps{Store: st, Nodes: nodes, Staging: h.s3, StagingBucket: cfg.S3.StagingBucket,
		Migrations: h.migs, Warehouse: wh,
		RefreshCatalog: func(ctx context.Context, node string) error {
			_, err := workflows.StartNodeCatalogSync(ctx, tc, node, false)
			return err
		},
		Limits: activities.UploadLimits{MaxUploadBytes: cfg.ETL.MaxUploadBytes, MaxCellBytes: cfg.ETL.MaxCellBytes,
			MaxRowBytes: cfg.ETL.MaxRowBytes, MaxPageBytes: cfg.ETL.MaxPageBytes, MaxColumnChunkBytes: cfg.ETL.MaxColumnChunkBytes,
			MinRowBytes: cfg.ETL.MinRowBytes, MaxBatchBytes: cfg.ETL.MaxBatchBytes}})
	return Activities{
		Schema: activities.NewSchema(st, wh, nodes, h.migs, h.log),
		Health: activities.NewHealth(st, nodes, startCatchUp,
			activities.HealthOptions{Concurrency: cfg.Health.Concurrency, PingTimeout: cfg.Health.PingTimeout}, h.log),
		Catalog:  activities.NewCatalog(st, nodes),
		Ontology: activities.NewOntology(st, nodes, h.onto),
		Jobs:     jobs,
		Etl:      etl,
		Benchmarks: activities.NewBenchmarks(st, nodes,
			activities.BenchmarkOptions{PingTimeout: cfg.Health.PingTimeout}, h.log),
		Meshes: activities.NewMeshes(activities.MeshesDeps{Store: st, Nodes: nodes, Objects: h.s3,
			StagingBucket: cfg.S3.StagingBucket, MeshesBucket: cfg.S3.MeshesBucket, MaxBytes: cfg.Mesh.MaxUploadBytes,
			Limits: mesh.Limits{MaxVertices: cfg.Mesh.MaxVertices, MaxTriangles: cfg.Mesh.MaxTriangles}}),
	}
}
