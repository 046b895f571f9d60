package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
)

func startJob(t *testing.T, spec string) api.JobStarted {
	t.Helper()
	status, raw := apiDo(t, http.MethodPost, "/v1/jobs", `{"kind": "analytics", "spec": `+spec+`}`)
	require.Equal(t, http.StatusAccepted, status, string(raw))
	var st api.JobStarted
	require.NoError(t, json.Unmarshal(raw, &st))
	return st
}

func jobStatus(t *testing.T, id string) api.JobStatus {
	t.Helper()
	status, raw := apiDo(t, http.MethodGet, "/v1/jobs/"+id, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var js api.JobStatus
	require.NoError(t, json.Unmarshal(raw, &js))
	return js
}

// waitJob polls the job until it leaves pending and running.
func waitJob(t *testing.T, id string, within time.Duration) api.JobStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	var js api.JobStatus
	require.NoError(t, pollUntil(ctx, func() error {
		js = jobStatus(t, id)
		if js.State == domain.JobPending || js.State == domain.JobRunning {
			return fmt.Errorf("job %s is %s", id, js.State)
		}
		return nil
	}))
	return js
}

func jobNodes(t *testing.T, js api.JobStatus) map[string]domain.JobNode {
	t.Helper()
	var nodes []domain.JobNode
	require.NoError(t, json.Unmarshal(js.Nodes, &nodes))
	out := map[string]domain.JobNode{}
	for _, n := range nodes {
		out[n.Name] = n
	}
	return out
}

func routableNodes(t *testing.T) {
	t.Helper()
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
}

// TestAnalyticsSummary: per-dataset statistics of a metric across both
// nodes equal ClickHouse's own, and the merged overall ones are exact.
func TestAnalyticsSummary(t *testing.T) {
	routableNodes(t)
	st := startJob(t, `{"analysis": "summary", "table": "neuron", "column": "voxel_volume", "quantiles": [0.5, 0.9]}`)
	js := waitJob(t, st.JobID, 2*time.Minute)
	require.Equal(t, domain.JobCompleted, js.State, "%s", js.Error)
	recordHistoryTo(t, temporalClient(t), st.WorkflowID, "", os.Getenv("SYNDB_RECORD_JOB_HISTORY"))
	var res activities.SummaryResult
	require.NoError(t, json.Unmarshal(js.Result, &res))

	got := map[string]activities.DatasetStats{}
	for _, d := range res.Datasets {
		got[d.DatasetID] = d
	}
	var n uint64
	var sum, sq float64
	for _, node := range []string{"lab-a", "lab-b"} {
		rows, err := nodeConn(t, node).Query(t.Context(), `SELECT toString(dataset_id), count(voxel_volume), avg(voxel_volume),
			stddevPop(voxel_volume), min(voxel_volume), max(voxel_volume), sum(voxel_volume), sum(voxel_volume * voxel_volume)
			FROM neuron WHERE voxel_volume IS NOT NULL GROUP BY dataset_id`)
		require.NoError(t, err)
		for rows.Next() {
			var (
				id                              string
				c                               uint64
				mean, sd, lo, hi, dsum, dsquare float64
			)
			require.NoError(t, rows.Scan(&id, &c, &mean, &sd, &lo, &hi, &dsum, &dsquare))
			d, ok := got[id]
			require.True(t, ok, "dataset %s of %s missing from the result", id, node)
			require.Equal(t, node, d.Node)
			require.Equal(t, c, d.Count)
			require.InDelta(t, mean, d.Mean, 1e-9*math.Max(1, math.Abs(mean)))
			require.InDelta(t, sd, d.Stddev, 1e-6*math.Max(1, sd))
			require.InDelta(t, lo, d.Min, 0)
			require.InDelta(t, hi, d.Max, 0)
			require.Len(t, d.Quantiles, 2)
			n, sum, sq = n+c, sum+dsum, sq+dsquare
		}
		require.NoError(t, rows.Close())
	}
	require.Equal(t, n, res.Overall.Count)
	mean := sum / float64(n)
	require.InDelta(t, mean, res.Overall.Mean, 1e-9*math.Max(1, mean))
	// The overall spread, by ClickHouse over both nodes' rows at once.
	count, sd := overallStddev(t, "neuron", "voxel_volume")
	require.Equal(t, n, count)
	require.InDelta(t, sd, res.Overall.Stddev, 1e-9*math.Max(1, sd))

	// The result is a Parquet object behind a pre-signed URL.
	status, raw := apiDo(t, http.MethodGet, "/v1/jobs/"+st.JobID+"/result", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var link api.JobResultLink
	require.NoError(t, json.Unmarshal(raw, &link))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, link.URL, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "PAR1", string(body[:4]), "a Parquet file")

	// Listed, and filterable by state.
	status, raw = apiDo(t, http.MethodGet, "/v1/jobs?state=completed&limit=100", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Contains(t, string(raw), st.JobID)
	status, _ = apiDo(t, http.MethodGet, "/v1/jobs?state=bogus", "")
	require.Equal(t, http.StatusBadRequest, status)
}

// overallStddev is ClickHouse's count and population standard deviation of
// column over both nodes' rows together: the hub's ClickHouse reads each
// node's table with remote() and computes stddevPop over their UNION ALL.
func overallStddev(t *testing.T, table, column string) (uint64, float64) {
	t.Helper()
	hub, err := clickhouse.Open(t.Context(), config.ClickHouse{Addr: fed.Stack.Hub.Addr(), User: "default", Database: "default"})
	require.NoError(t, err)
	defer func() { _ = hub.Close() }()
	part := func(node string) string {
		return fmt.Sprintf("SELECT assumeNotNull(%s) AS v FROM remote('%s', syndb, %s) WHERE %s IS NOT NULL",
			column, fed.Stack.Nodes[node].Addr(), table, column)
	}
	var (
		n  uint64
		sd float64
	)
	require.NoError(t, hub.QueryRow(t.Context(), "SELECT count(), stddevPop(v) FROM ("+part("lab-a")+" UNION ALL "+part("lab-b")+")").
		Scan(&n, &sd))
	return n, sd
}

// TestAnalyticsSynapseGraph: every neuron's in and out degree, pulled over
// the nodes' Flight servers (over libp2p) and counted on the hub, equal
// ClickHouse's.
func TestAnalyticsSynapseGraph(t *testing.T) {
	routableNodes(t)
	pulled := overLibp2p(t, "lab-a", "lab-b")
	st := startJob(t, `{"analysis": "synapse_graph"}`)
	js := waitJob(t, st.JobID, 2*time.Minute)
	require.Equal(t, domain.JobCompleted, js.State, "%s", js.Error)
	pulled()
	var res activities.GraphResult
	require.NoError(t, json.Unmarshal(js.Result, &res))
	requireGraph(t, res, "lab-a", "lab-b")
}

// requireGraph checks a synapse graph of nodes against ClickHouse's own
// degrees, counted on each node's warehouse.
func requireGraph(t *testing.T, res activities.GraphResult, nodes ...string) {
	t.Helper()
	in, out := map[string]int64{}, map[string]int64{}
	var edges int64
	for _, node := range nodes {
		for col, m := range map[string]map[string]int64{"pre_id": out, "post_id": in} {
			rows, err := nodeConn(t, node).Query(t.Context(), fmt.Sprintf(
				"SELECT toString(%s), count() FROM synapse WHERE %s IS NOT NULL GROUP BY %s", col, col, col))
			require.NoError(t, err)
			for rows.Next() {
				var id string
				var c uint64
				require.NoError(t, rows.Scan(&id, &c))
				m[node+"/"+id] += int64(c)
				if col == "pre_id" {
					edges += int64(c)
				}
			}
			require.NoError(t, rows.Close())
		}
	}
	neurons := map[string]bool{}
	wantIn, wantOut := map[int64]int64{}, map[int64]int64{}
	for k := range in {
		neurons[k] = true
	}
	for k := range out {
		neurons[k] = true
	}
	for k := range neurons {
		wantIn[in[k]]++
		wantOut[out[k]]++
	}
	require.Positive(t, edges)
	require.Equal(t, int64(len(neurons)), res.Neurons)
	require.Equal(t, edges, res.Edges)
	require.Equal(t, wantIn, res.InDegree)
	require.Equal(t, wantOut, res.OutDegree)
}

// TestAnalyticsNodeDown: a node that is down (the health monitor has seen
// it) leaves the job partial, and the job names it, excluded, with the
// reason; with require_all the job fails instead, naming it.
func TestAnalyticsNodeDown(t *testing.T) {
	routableNodes(t)
	agent(t, "lab-b").Stop(t.Context())
	waitHealth(t, "lab-b", health.Unreachable, time.Minute)

	js := waitJob(t, startJob(t, `{"analysis": "summary", "table": "neuron", "column": "voxel_volume"}`).JobID, 2*time.Minute)
	require.Equal(t, domain.JobPartial, js.State, "%s", js.Error)
	nodes := jobNodes(t, js)
	require.Equal(t, domain.JobNodeDone, nodes["lab-a"].State)
	require.Equal(t, domain.JobNodeExcluded, nodes["lab-b"].State, "%s", js.Nodes)
	require.Contains(t, nodes["lab-b"].Error, "unreachable", "%s", js.Nodes)
	var res activities.SummaryResult
	require.NoError(t, json.Unmarshal(js.Result, &res))
	for _, d := range res.Datasets {
		require.Equal(t, "lab-a", d.Node, "only lab-a's data")
	}

	js = waitJob(t, startJob(t, `{"analysis": "summary", "table": "neuron", "column": "voxel_volume", "require_all": true}`).JobID, 2*time.Minute)
	require.Equal(t, domain.JobFailed, js.State)
	require.Contains(t, js.Error, "requires every node")
	require.Contains(t, js.Error, "lab-b: unreachable")
}

// TestAnalyticsCancel: DELETE stops a running job promptly: the node's
// activity learns of it through its heartbeat.
func TestAnalyticsCancel(t *testing.T) {
	routableNodes(t)
	require.NoError(t, fed.StopNode(t.Context(), "lab-b", false))
	require.NoError(t, fed.StartNodeWith(t.Context(), "lab-b", map[string]string{"SYNDB_NODE_ANSWER_DELAY": "30s"}))
	t.Cleanup(func() {
		_ = fed.StopNode(context.Background(), "lab-b", false)
		require.NoError(t, fed.StartNode(context.Background(), "lab-b"))
	})
	st := startJob(t, `{"analysis": "summary", "table": "neuron", "column": "voxel_volume", "nodes": ["lab-b"]}`)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		js := jobStatus(t, st.JobID)
		if p := analyticsProgress(t, js); len(p.Nodes) == 0 || p.Nodes[0].State != domain.JobNodeRunning {
			return fmt.Errorf("job not running on lab-b yet: %s", js.State)
		}
		return nil
	}))
	began := time.Now()
	status, raw := apiDo(t, http.MethodDelete, "/v1/jobs/"+st.JobID, "")
	require.Equal(t, http.StatusAccepted, status, string(raw))
	js := waitJob(t, st.JobID, 25*time.Second)
	t.Logf("job cancelled %s after DELETE", time.Since(began))
	require.Equal(t, domain.JobCancelled, js.State)
	require.Less(t, time.Since(began), 25*time.Second, "before the node's held-back answer")
	status, _ = apiDo(t, http.MethodDelete, "/v1/jobs/"+st.JobID, "")
	require.Equal(t, http.StatusConflict, status, "a finished job cannot be cancelled")
}

func TestJobRefusals(t *testing.T) {
	for _, body := range []string{
		`{"kind": "etl-nope", "spec": {}}`,
		`{"kind": "analytics", "spec": {"analysis": "nope"}}`,
		`{"kind": "analytics", "spec": {"analysis": "summary", "table": "neuron", "column": "secret"}}`,
		`{"kind": "analytics", "spec": {"analysis": "summary", "table": "neuron", "column": "voxel_volume", "quantiles": [2]}}`,
		`{"kind": "analytics", "spec": {"analysis": "summary", "table": "neuron", "column": "voxel_volume", "extra": 1}}`,
		`{"kind": "analytics", "spec": {"analysis": "synapse_graph", "dataset_ids": ["not-a-uuid"]}}`,
	} {
		status, raw := apiDo(t, http.MethodPost, "/v1/jobs", body)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", body, raw)
	}
	status, _ := apiDo(t, http.MethodGet, "/v1/jobs/00000000-0000-4000-8000-000000000000", "")
	require.Equal(t, http.StatusNotFound, status)
}
