package workers

import (
	"fmt"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/internal/config"
)

// registerJobs registers the activities of analytics and ETL jobs.
func registerJobs(w worker.Registry, jobs *activities.Jobs, etl *activities.Etl) {
	w.RegisterActivityWithOptions(jobs.StartJob, activity.RegisterOptions{Name: activities.StartJobName})
	w.RegisterActivityWithOptions(jobs.JobTargets, activity.RegisterOptions{Name: activities.JobTargetsName})
	w.RegisterActivityWithOptions(jobs.NodeAnalysis, activity.RegisterOptions{Name: activities.NodeAnalysisName})
	w.RegisterActivityWithOptions(jobs.MergeJob, activity.RegisterOptions{Name: activities.MergeJobName})
	w.RegisterActivityWithOptions(jobs.FinishJob, activity.RegisterOptions{Name: activities.FinishJobName})
	w.RegisterActivityWithOptions(etl.EtlTarget, activity.RegisterOptions{Name: activities.EtlTargetName})
	w.RegisterActivityWithOptions(etl.ValidateStaged, activity.RegisterOptions{Name: activities.ValidateStagedName})
	w.RegisterActivityWithOptions(etl.LoadStaged, activity.RegisterOptions{Name: activities.LoadStagedName})
	w.RegisterActivityWithOptions(etl.RegisterDataset, activity.RegisterOptions{Name: activities.RegisterDatasetName})
	w.RegisterActivityWithOptions(etl.DeleteStaged, activity.RegisterOptions{Name: activities.DeleteStagedName})
	w.RegisterActivityWithOptions(etl.RefreshCatalog, activity.RegisterOptions{Name: activities.RefreshCatalogName})
}

// newS3 connects to the hub's object store.
func newS3(c config.S3) (*minio.Client, error) {
	mc, err := minio.New(c.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""), Secure: c.UseTLS})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", c.Endpoint, err)
	}
	return mc, nil
}
