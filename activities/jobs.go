package activities

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/routing"
	"github.com/syndb/federation/internal/store"
)

// jobStore is what the job activities need of PostgreSQL.
type jobStore interface {
	Clusters(ctx context.Context, activeOnly bool) ([]domain.Cluster, error)
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
	return &Jobs{store: d.Store, flight: newNodeFlight(d.Nodes), results: d.Results, bucket: d.Bucket,
		columns: migrate.ColumnVersions(d.Migrations), log: d.Log}
}

// StartJob marks the job running.
func (a *Jobs) StartJob(ctx context.Context, p domain.JobRef) error {
	id, err := uuid.Parse(p.JobID)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("bad job ID", domain.ErrTypeInvalid, err)
	}
	return a.store.StartJob(ctx, id)
}

// JobTargets routes a job: Healthy, then Degraded nodes whose schema has
// what the analysis reads.
func (a *Jobs) JobTargets(ctx context.Context, p domain.JobTargetsParams) (domain.JobTargetsResult, error) {
	// Active, registered nodes: revoked ones are no longer the federation's.
	cs, err := a.store.Clusters(ctx, true)
	if err != nil {
		return domain.JobTargetsResult{}, err
	}
	plan := routing.Route(routing.FromClusters(cs), routing.Need{MinSchema: p.Spec.MinSchema(a.columns), Nodes: p.Spec.Nodes})
	byName := map[string]domain.Cluster{}
	for _, c := range cs {
		byName[c.Name] = c
	}
	out := domain.JobTargetsResult{Nodes: []domain.NodeRef{}, Excluded: plan.Excluded}
	for _, n := range plan.Included {
		out.Nodes = append(out.Nodes, nodeRef(byName[n.Name]))
	}
	if out.Excluded == nil {
		out.Excluded = []domain.Exclusion{}
	}
	return out, nil
}

// FinishJob records how the job ended.
func (a *Jobs) FinishJob(ctx context.Context, p domain.FinishParams) error {
	id, err := uuid.Parse(p.JobID)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("bad job ID", domain.ErrTypeInvalid, err)
	}
	if !slices.Contains(domain.JobStates, p.State) {
		return temporal.NewNonRetryableApplicationError("bad job state "+p.State, domain.ErrTypeInvalid, nil)
	}
	var nodes json.RawMessage
	if p.Nodes != nil {
		if nodes, err = json.Marshal(p.Nodes); err != nil {
			return temporal.NewNonRetryableApplicationError("encode the job's nodes", domain.ErrTypeInvalid, err)
		}
	}
	a.log.Info("job finished", "job", p.JobID, "state", p.State, "err", p.Error)
	return a.store.FinishJob(ctx, id, store.JobOutcome{State: p.State, Nodes: nodes, Result: p.Result.Raw,
		ResultObject: p.ResultObject, Error: p.Error})
}
