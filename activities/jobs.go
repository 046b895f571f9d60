package activities

import (
	"context"
	"log/slog"
	"slices"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/routing"
	"github.com/syndb/federation/internal/store"
)

// jobStore is what the job activities need of PostgreSQL.
type jobStore interface {
	Clusters(ctx context.Context, activeOnly bool) ([]store.Cluster, error)
	StartJob(ctx context.Context, id uuid.UUID) error
	FinishJob(ctx context.Context, id uuid.UUID, o store.JobOutcome) error
}

// objectStore is what the job activities need of S3.
type objectStore interface {
	FPutObject(ctx context.Context, bucket, object, filePath string, opts minio.PutObjectOptions) (minio.UploadInfo, error)
	FGetObject(ctx context.Context, bucket, object, filePath string, opts minio.GetObjectOptions) error
}

// Jobs holds the activities of analytics jobs, and the start and finish
// every job (analytics or ETL) records.
type Jobs struct {
	store   jobStore
	flight  nodeFlight
	results objectStore
	bucket  string
	columns map[string]map[string]int
	log     *slog.Logger
}

// JobsDeps are what the job activities need.
type JobsDeps struct {
	Store jobStore
	Nodes nodeCaller
	// Results is the object store job results go to, in Bucket.
	Results objectStore
	Bucket  string
	// Migrations tell which schema a job needs.
	Migrations []migrate.Migration
	Log        *slog.Logger
}

// NewJobs returns the job activities.
func NewJobs(d JobsDeps) *Jobs {
	return &Jobs{store: d.Store, flight: nodeFlight{nodes: d.Nodes}, results: d.Results, bucket: d.Bucket,
		columns: migrate.ColumnVersions(d.Migrations), log: d.Log}
}

// JobRef names a job.
type JobRef struct {
	JobID string `json:"job_id"`
}

// StartJob marks the job running.
func (a *Jobs) StartJob(ctx context.Context, p JobRef) error {
	id, err := uuid.Parse(p.JobID)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("bad job ID", ErrTypeInvalid, err)
	}
	return a.store.StartJob(ctx, id)
}

// JobTargetsParams is the input of JobTargets.
type JobTargetsParams struct {
	Spec AnalyticsSpec `json:"spec"`
}

// JobTargetsResult lists the nodes a job runs on, and those left out.
type JobTargetsResult struct {
	Nodes    []NodeRef           `json:"nodes"`
	Excluded []routing.Exclusion `json:"excluded"`
}

// JobTargets routes a job: Healthy, then Degraded nodes whose schema has
// what the analysis reads.
func (a *Jobs) JobTargets(ctx context.Context, p JobTargetsParams) (JobTargetsResult, error) {
	// Active, registered nodes: revoked ones are no longer the federation's.
	cs, err := a.store.Clusters(ctx, true)
	if err != nil {
		return JobTargetsResult{}, err
	}
	plan := routing.Route(routing.FromClusters(cs), routing.Need{MinSchema: p.Spec.minSchema(a.columns), Nodes: p.Spec.Nodes})
	byName := map[string]store.Cluster{}
	for _, c := range cs {
		byName[c.Name] = c
	}
	out := JobTargetsResult{Nodes: []NodeRef{}, Excluded: plan.Excluded}
	for _, n := range plan.Included {
		out.Nodes = append(out.Nodes, nodeRef(byName[n.Name]))
	}
	if out.Excluded == nil {
		out.Excluded = []routing.Exclusion{}
	}
	return out, nil
}

// FinishJob records how the job ended.
func (a *Jobs) FinishJob(ctx context.Context, p FinishParams) error {
	id, err := uuid.Parse(p.JobID)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("bad job ID", ErrTypeInvalid, err)
	}
	if !slices.Contains(store.JobStates, p.State) {
		return temporal.NewNonRetryableApplicationError("bad job state "+p.State, ErrTypeInvalid, nil)
	}
	a.log.Info("job finished", "job", p.JobID, "state", p.State, "err", p.Error)
	return a.store.FinishJob(ctx, id, store.JobOutcome{State: p.State, Nodes: p.Nodes, Result: p.Result,
		ResultObject: p.ResultObject, Error: p.Error})
}
