package workers

import (
	"fmt"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
)

// registerJobs registers the activities of analytics and ETL jobs.
func registerJobs(w worker.Registry, jobs *activities.Jobs, etl *activities.Etl) {
	w.RegisterActivityWithOptions(jobs.StartJob, activity.RegisterOptions{Name: domain.StartJobName})
	w.RegisterActivityWithOptions(jobs.JobTargets, activity.RegisterOptions{Name: domain.JobTargetsName})
	w.RegisterActivityWithOptions(jobs.NodeAnalysis, activity.RegisterOptions{Name: domain.NodeAnalysisName})
	w.RegisterActivityWithOptions(jobs.MergeJob, activity.RegisterOptions{Name: domain.MergeJobName})
	w.RegisterActivityWithOptions(jobs.FinishJob, activity.RegisterOptions{Name: domain.FinishJobName})
	w.RegisterActivityWithOptions(etl.EtlTarget, activity.RegisterOptions{Name: domain.EtlTargetName})
	w.RegisterActivityWithOptions(etl.ValidateStaged, activity.RegisterOptions{Name: domain.ValidateStagedName})
	w.RegisterActivityWithOptions(etl.LoadStaged, activity.RegisterOptions{Name: domain.LoadStagedName})
	w.RegisterActivityWithOptions(etl.RegisterDataset, activity.RegisterOptions{Name: domain.RegisterDatasetName})
	w.RegisterActivityWithOptions(etl.DeleteStaged, activity.RegisterOptions{Name: domain.DeleteStagedName})
	w.RegisterActivityWithOptions(etl.RefreshCatalog, activity.RegisterOptions{Name: domain.RefreshCatalogName})
}

// newS3 connects to the hub's object store.
func newS3(c config.S3) (*minio.Client, error) {
	mc, err := minio.New(c.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""), Secure: c.UseTLS})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", c.Endpoint, err)
	}
	return mc, nil
}
