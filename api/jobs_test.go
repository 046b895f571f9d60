package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
)

// fakeJobs holds one job.
type fakeJobs struct{ job domain.Job }

func (f fakeJobs) CreateJob(context.Context, uuid.UUID, string, json.RawMessage, string, int64) (domain.Job, error) {
	return domain.Job{}, errors.New("not in this test")
}

func (f fakeJobs) Job(_ context.Context, id uuid.UUID) (domain.Job, error) {
	if id != f.job.ID {
		return domain.Job{}, domain.ErrNotFound
	}
	return f.job, nil
}

func (f fakeJobs) Jobs(context.Context, string, int, int) ([]domain.Job, error) {
	return []domain.Job{f.job}, nil
}

// progressTemporal answers every progress query with progress, encoded as
// the SDK's data converter encodes a workflow's query answer.
type progressTemporal struct {
	client.Client
	progress any
}

func (p progressTemporal) QueryWorkflow(context.Context, string, string, string, ...any) (converter.EncodedValue, error) {
	payloads, err := converter.GetDefaultDataConverter().ToPayloads(p.progress)
	if err != nil {
		return nil, err
	}
	return client.NewValue(payloads), nil
}

// TestJobProgressByKind: a running job's progress is shown in the shape of
// its kind; an ETL job's step, report and loaded rows are not lost to the
// analytics shape.
func TestJobProgressByKind(t *testing.T) {
	t.Parallel()
	etl := domain.EtlResult{State: domain.JobRunning, Step: "loading",
		Report:     domain.EtlReport{Rows: 1000, Columns: []string{"cid", "voxel_volume"}, Problems: []domain.Problem{}},
		Loaded:     domain.EtlLoaded{Rows: 250, Batches: 1},
		Registered: false}
	analytics := domain.JobResult{State: domain.JobRunning, Excluded: []domain.Exclusion{},
		Nodes: []domain.JobNode{{Name: "lab-a", State: domain.JobNodeRunning, Rows: 12}}}
	for _, tc := range []struct {
		kind     string
		progress any
		want     string // the progress the API must show, written by hand
	}{
		{"etl", etl, `{"state": "running", "step": "loading", "registered": false, "catalog_refreshed": false,
			"report": {"rows": 1000, "columns": ["cid", "voxel_volume"], "problems": [], "problem_count": 0},
			"loaded": {"rows": 250, "batches": 1, "duration_ms": 0}}`},
		{"analytics", analytics, `{"state": "running", "excluded": [],
			"nodes": [{"name": "lab-a", "state": "running", "rows": 12, "bytes": 0, "duration_ms": 0}]}`},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			job := domain.Job{ID: uuid.New(), Kind: tc.kind, State: domain.JobRunning, WorkflowID: "job-x",
				Spec: json.RawMessage(`{}`), Nodes: json.RawMessage(`[]`)}
			s := New(config.API{PublicURL: "http://hub"}, Deps{Store: fakeStore{}, Jobs: fakeJobs{job: job},
				Temporal: progressTemporal{progress: tc.progress}, Log: slog.New(slog.DiscardHandler)})
			srv := httptest.NewServer(s.Handler())
			t.Cleanup(srv.Close)
			status, _, raw := do(t, srv, http.MethodGet, "/v1/jobs/"+job.ID.String(), "Bearer "+readerKey, "")
			require.Equal(t, http.StatusOK, status, string(raw))
			var got struct {
				Progress json.RawMessage `json:"progress"`
			}
			require.NoError(t, json.Unmarshal(raw, &got))
			require.JSONEq(t, tc.want, string(got.Progress))
		})
	}
}
