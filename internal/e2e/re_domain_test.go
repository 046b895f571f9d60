package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
)

// TestEtlProgressWhileRunning: GET /v1/jobs/{id} of a running ETL job
// shows the ETL job's own progress (its step, the validation report and
// what is loaded so far), not an analytics job's shape. lab-b holds every
// answer back (under the health monitor's slow mark, so it stays Healthy),
// which keeps the job in its loading step long enough to be seen.
func TestEtlProgressWhileRunning(t *testing.T) {
	routableNodes(t)
	require.NoError(t, fed.StopNode(t.Context(), "lab-b", false))
	require.NoError(t, fed.StartNodeWith(t.Context(), "lab-b", map[string]string{"SYNDB_NODE_ANSWER_DELAY": "700ms"}))
	dataset := uuid.New()
	conn := nodeConn(t, "lab-b") // closed after the cleanup below
	t.Cleanup(func() {
		ctx := context.Background()
		_ = fed.StopNode(ctx, "lab-b", false)
		require.NoError(t, fed.StartNode(ctx, "lab-b"))
		for _, table := range []string{"neuron", "datasets"} {
			require.NoError(t, conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DELETE WHERE dataset_id = toUUID('%s')", table, dataset)))
		}
	})
	waitHealth(t, "lab-b", health.Healthy, time.Minute)

	const rows = 200 // the file's rows, counted by hand below
	var csv strings.Builder
	csv.WriteString("cid,voxel_volume,neuron_type,terminal_count\n")
	for i := range rows {
		fmt.Fprintf(&csv, "%s,%d,pyramidal,%d\n", uuid.New(), i+1, i%7)
	}
	obj := upload(t, "progress.csv", []byte(csv.String()))
	spec := fmt.Sprintf(`{"object": %q, "table": "neuron", "node": "lab-b", "dataset": {"dataset_id": %q,
		"name": "ETL progress", "owner": "etl-test", "animal": "mouse", "microscopy": "SBEM", "genetic_manipulations": []}}`,
		obj, dataset)
	status, raw := apiDo(t, http.MethodPost, "/v1/jobs", `{"kind": "etl", "spec": `+spec+`}`)
	require.Equal(t, http.StatusAccepted, status, string(raw))
	var started struct {
		JobID string `json:"job_id"`
	}
	require.NoError(t, json.Unmarshal(raw, &started))

	// The raw JSON, so a field the API drops is seen missing whatever Go
	// type the client would decode into.
	type progress struct {
		State    string                     `json:"state"`
		Progress map[string]json.RawMessage `json:"progress"`
	}
	var seen []string
	var loading map[string]json.RawMessage
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for loading == nil {
		status, raw := apiDo(t, http.MethodGet, "/v1/jobs/"+started.JobID, "")
		require.Equal(t, http.StatusOK, status, string(raw))
		var js progress
		require.NoError(t, json.Unmarshal(raw, &js))
		require.Contains(t, []string{"pending", "running"}, js.State, "the job ended before its loading step was seen; progress seen: %v", seen)
		if js.Progress != nil {
			seen = append(seen, string(raw))
			var step string
			if s, ok := js.Progress["step"]; ok {
				require.NoError(t, json.Unmarshal(s, &step))
			}
			require.NotEmpty(t, step, "a running ETL job's progress names its step: %s", raw)
			for _, key := range []string{"report", "loaded"} {
				require.Contains(t, js.Progress, key, "a running ETL job's progress has its %s: %s", key, raw)
			}
			if step == "loading" {
				loading = js.Progress
				t.Logf("progress while loading: %s", raw)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no loading step seen in time; progress seen: %v", seen)
		case <-tick.C:
		}
	}
	var report struct {
		Rows         int64 `json:"rows"`
		ProblemCount int   `json:"problem_count"`
	}
	require.NoError(t, json.Unmarshal(loading["report"], &report))
	require.Equal(t, int64(rows), report.Rows, "while loading, the report counts the validated file's rows")
	require.Zero(t, report.ProblemCount)

	js := waitJob(t, started.JobID, 2*time.Minute)
	require.Equal(t, "completed", js.State, "%s", js.Error)
	require.Equal(t, uint64(rows), nodeRows(t, "lab-b", "neuron", dataset.String()), "lab-b's own count of the rows")
}

// nodeRows counts a dataset's rows in a node's table, in its ClickHouse.
func nodeRows(t *testing.T, node, table, dataset string) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, nodeConn(t, node).QueryRow(t.Context(),
		fmt.Sprintf("SELECT count() FROM %s WHERE dataset_id = toUUID('%s')", table, dataset)).Scan(&n))
	return n
}

// analyticsProgress is an analytics job's live progress (none before its
// workflow answers).
func analyticsProgress(t *testing.T, js api.JobStatus) domain.JobResult {
	t.Helper()
	var p domain.JobResult
	if len(js.Progress) > 0 {
		require.NoError(t, json.Unmarshal(js.Progress, &p))
	}
	return p
}
