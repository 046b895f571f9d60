package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/workflows"
)

// startBenchmark starts a benchmark run of the fleet; it must be a new run,
// not one a test before left going.
func startBenchmark(t *testing.T) api.SyncStarted {
	t.Helper()
	status, raw := apiDo(t, http.MethodPost, "/v1/federation/benchmarks", `{"concurrency": 2}`)
	require.Equal(t, http.StatusAccepted, status, string(raw))
	var st api.SyncStarted
	require.NoError(t, json.Unmarshal(raw, &st))
	require.Equal(t, workflows.BenchmarkID, st.WorkflowID)
	require.False(t, st.Joined, "a run of an earlier test is still going")
	require.True(t, strings.HasSuffix(st.StatusURL, "/v1/federation/benchmarks/"+workflows.BenchmarkID), st.StatusURL)
	require.Contains(t, st.UIURL, st.RunID)
	return st
}

// benchmarkStatus is the status of the benchmark run named by its status URL.
func benchmarkStatus(t *testing.T, id string) api.BenchmarkRunStatus {
	t.Helper()
	status, raw := apiDo(t, http.MethodGet, "/v1/federation/benchmarks/"+id, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var out api.BenchmarkRunStatus
	require.NoError(t, json.Unmarshal(raw, &out))
	return out
}

// waitBenchmark polls the run's status until it has closed.
func waitBenchmark(t *testing.T, st api.SyncStarted) api.BenchmarkRunStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out api.BenchmarkRunStatus
	require.NoError(t, pollUntil(ctx, func() error {
		out = benchmarkStatus(t, st.WorkflowID)
		if out.RunID != st.RunID || out.Status == "running" {
			return fmt.Errorf("run %s is %s", out.RunID, out.Status)
		}
		return nil
	}))
	require.Equal(t, "completed", out.Status, out.Error)
	return out
}

// pgConn is a connection to the hub's PostgreSQL: the oracle of what was
// recorded.
func pgConn(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// recordedRow is a benchmark row as PostgreSQL holds it.
type recordedRow struct {
	ok          bool
	value       *float64
	unit, path  string
	errText     string
	workflowID  string
	measuredAge time.Duration
}

// recordedRows reads a run's rows straight from PostgreSQL, by node and
// kind, failing on a second row of one node and kind.
func recordedRows(t *testing.T, runID string) map[string]map[domain.BenchmarkKind]recordedRow {
	t.Helper()
	rows, err := pgConn(t).Query(t.Context(), `SELECT node, kind, ok, value, unit, path, error, workflow_id,
		extract(epoch FROM now() - measured_at) FROM benchmarks WHERE run_id = $1`, runID)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]map[domain.BenchmarkKind]recordedRow{}
	for rows.Next() {
		var (
			node, kind string
			r          recordedRow
			age        float64
		)
		require.NoError(t, rows.Scan(&node, &kind, &r.ok, &r.value, &r.unit, &r.path, &r.errText, &r.workflowID, &age))
		r.measuredAge = time.Duration(age * float64(time.Second))
		if out[node] == nil {
			out[node] = map[domain.BenchmarkKind]recordedRow{}
		}
		_, dup := out[node][domain.BenchmarkKind(kind)]
		require.False(t, dup, "%s %s recorded twice", node, kind)
		out[node][domain.BenchmarkKind(kind)] = r
	}
	require.NoError(t, rows.Err())
	return out
}

// TestNodeBenchmarkRecordsEveryNodeAndKind: an on-demand run measures both
// nodes and records one row per node and kind, each with its value, unit
// and the path the registry reports for the node; the API lists the same
// rows.
func TestNodeBenchmarkRecordsEveryNodeAndKind(t *testing.T) {
	routableNodes(t)
	st := startBenchmark(t)
	res := waitBenchmark(t, st)
	require.Equal(t, 2, res.Measured, "%+v", res.Nodes)
	require.Zero(t, res.Failed)
	require.Equal(t, 8, res.Recorded)

	rows := recordedRows(t, st.RunID)
	require.Len(t, rows, 2)
	for _, node := range []string{"lab-a", "lab-b"} {
		require.Len(t, rows[node], len(domain.BenchmarkKinds), node)
		path := healthOf(t, node).Path
		require.NotEmpty(t, path)
		for _, k := range domain.BenchmarkKinds {
			r := rows[node][k]
			require.True(t, r.ok, "%s %s: %s", node, k, r.errText)
			require.NotNil(t, r.value, "%s %s", node, k)
			require.Positive(t, *r.value, "%s %s", node, k)
			require.Equal(t, k.Unit(), r.unit)
			require.Equal(t, path, r.path, "%s %s: the registry's path", node, k)
			require.Equal(t, workflows.BenchmarkID, r.workflowID)
			require.Less(t, r.measuredAge, 3*time.Minute)
		}
		t.Logf("%s over %s: ping %.2f ms, aggregate %.2f ms, Flight %.0f rows/s, %.2f MB/s", node, rows[node][domain.BenchmarkPing].path,
			*rows[node][domain.BenchmarkPing].value, *rows[node][domain.BenchmarkAggregate].value,
			*rows[node][domain.BenchmarkFlightRows].value, *rows[node][domain.BenchmarkFlightBytes].value)
	}

	// The API pages the same rows, newest first.
	status, raw := apiDo(t, http.MethodGet, "/v1/federation/benchmarks?run="+st.RunID+"&limit=5", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var page api.BenchmarkPage
	require.NoError(t, json.Unmarshal(raw, &page))
	require.Len(t, page.Benchmarks, 5)
	require.NotEmpty(t, page.Next)
	status, raw = apiDo(t, http.MethodGet, strings.TrimPrefix(page.Next, fed.APIURL), "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var rest api.BenchmarkPage
	require.NoError(t, json.Unmarshal(raw, &rest))
	require.Len(t, rest.Benchmarks, 3)
	seen := map[string]bool{}
	all := append(page.Benchmarks, rest.Benchmarks...)
	for i, b := range all {
		if i > 0 {
			require.False(t, b.MeasuredAt.After(all[i-1].MeasuredAt), "newest first")
		}
		key := b.Node + "/" + string(b.Kind)
		require.False(t, seen[key], key)
		seen[key] = true
		require.InDelta(t, *rows[b.Node][b.Kind].value, *b.Value, 1e-9)
	}
	status, raw = apiDo(t, http.MethodGet, "/v1/federation/benchmarks?node=lab-b&kind=aggregate&run="+st.RunID, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	page = api.BenchmarkPage{}
	require.NoError(t, json.Unmarshal(raw, &page))
	require.Len(t, page.Benchmarks, 1)
	require.Equal(t, "lab-b", page.Benchmarks[0].Node)
	status, _ = apiDo(t, http.MethodGet, "/v1/federation/benchmarks?kind=latency", "")
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = apiDo(t, http.MethodGet, "/v1/federation/benchmarks?limit=0", "")
	require.Equal(t, http.StatusBadRequest, status)
}

// TestNodeBenchmarkStoppedNodeFails: a node whose agent stops while the run
// measures it is recorded as failed, with the reason, in every kind it
// could no longer answer; it is not skipped, and the other node is
// measured as usual.
func TestNodeBenchmarkStoppedNodeFails(t *testing.T) {
	routableNodes(t)
	labA := agent(t, "lab-a")
	// Slow answers keep lab-a's pings going for seconds: time to stop it
	// in the middle of its benchmark.
	labA.Stop(t.Context())
	restarted := time.Now()
	labA.StartWith(t.Context(), map[string]string{"SYNDB_NODE_ANSWER_DELAY": "2s"})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		h := healthOf(t, "lab-a")
		if h.State != string(health.Degraded) || !h.LastSeen.After(restarted) {
			return fmt.Errorf("lab-a is %s, last seen %s", h.State, h.LastSeen)
		}
		return nil
	}), "lab-a answers again, slowly")

	st := startBenchmark(t)
	require.NoError(t, pollUntil(ctx, func() error {
		for _, n := range benchmarkStatus(t, st.WorkflowID).Nodes {
			if n.Name == "lab-a" && n.Status == workflows.NodeMeasuring {
				return nil
			}
		}
		return fmt.Errorf("lab-a is not being measured yet")
	}))
	labA.Stop(t.Context())
	res := waitBenchmark(t, st)
	recordHistoryTo(t, temporalClient(t), st.WorkflowID, st.RunID, os.Getenv("SYNDB_RECORD_BENCHMARK_HISTORY"))
	require.Equal(t, 1, res.Measured, "%+v", res.Nodes)
	require.Equal(t, 1, res.Failed)
	require.Equal(t, 8, res.Recorded)

	rows := recordedRows(t, st.RunID)
	require.Len(t, rows["lab-a"], len(domain.BenchmarkKinds), "the stopped node is recorded, not skipped")
	for _, k := range domain.BenchmarkKinds[1:] {
		r := rows["lab-a"][k]
		require.False(t, r.ok, "lab-a %s was measured after its agent stopped", k)
		require.Nil(t, r.value, k)
		require.NotEmpty(t, r.errText, k)
		t.Logf("lab-a %s: %s", k, r.errText)
	}
	t.Logf("lab-a ping: ok=%v %s", rows["lab-a"][domain.BenchmarkPing].ok, rows["lab-a"][domain.BenchmarkPing].errText)
	for _, k := range domain.BenchmarkKinds {
		require.True(t, rows["lab-b"][k].ok, "lab-b %s: %s", k, rows["lab-b"][k].errText)
	}
	for _, n := range res.Nodes {
		if n.Name == "lab-a" {
			require.Equal(t, workflows.NodeFailed, n.Status)
			require.NotEmpty(t, n.Errors[domain.BenchmarkAggregate])
		}
	}
}

// routingPlan is GET /v1/federation/routing.
func routingPlan(t *testing.T) api.RoutingPlan {
	t.Helper()
	status, raw := apiDo(t, http.MethodGet, "/v1/federation/routing", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var plan api.RoutingPlan
	require.NoError(t, json.Unmarshal(raw, &plan))
	return plan
}

// recordFigures records five aggregates of each node, measured now, under
// a run of the test's own (deleted at cleanup), through the store as the
// workflow's activity records them.
func recordFigures(t *testing.T, st *store.Store, ms map[string]float64) {
	t.Helper()
	run := "e2e-routing-" + uuid.NewString()
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), fed.Env["SYNDB_POSTGRES_DSN"])
		if err != nil {
			t.Errorf("delete figures of %s: %v", run, err)
			return
		}
		defer func() { _ = conn.Close(context.Background()) }()
		if _, err := conn.Exec(context.Background(), `DELETE FROM benchmarks WHERE run_id LIKE $1`, run+"%"); err != nil {
			t.Errorf("delete figures of %s: %v", run, err)
		}
	})
	now := time.Now().UTC()
	var rows []domain.Benchmark
	for node, v := range ms {
		for i := range domain.BenchmarkFigureSamples {
			rows = append(rows, domain.Benchmark{WorkflowID: "e2e-routing", RunID: fmt.Sprintf("%s-%d", run, i), Node: node,
				Kind: domain.BenchmarkAggregate, Value: &v, OK: true, MeasuredAt: now.Add(-time.Duration(i) * time.Millisecond)})
		}
	}
	require.NoError(t, st.RecordBenchmarks(t.Context(), rows))
}

// waitFigures polls the routing plan until it shows the given figures: the
// API's registry snapshot has reloaded them.
func waitFigures(t *testing.T, ms map[string]float64) api.RoutingPlan {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var plan api.RoutingPlan
	require.NoError(t, pollUntil(ctx, func() error {
		plan = routingPlan(t)
		got := map[string]float64{}
		for _, n := range plan.Nodes {
			got[n.Name] = n.BenchmarkMS
		}
		for node, v := range ms {
			if got[node] != v {
				return fmt.Errorf("the plan shows %v, not yet %v", got, ms)
			}
		}
		return nil
	}))
	return plan
}

// TestRoutingFollowsBenchmarks: figures that make lab-b faster put it
// first in the routing plan and in a query's nodes, both nodes Healthy;
// figures that make lab-a faster put lab-a first.
func TestRoutingFollowsBenchmarks(t *testing.T) {
	routableNodes(t)
	st, err := store.Open(t.Context(), fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(t, err)
	t.Cleanup(st.Close)
	for _, tc := range []struct {
		figures map[string]float64
		first   []string
	}{
		{map[string]float64{"lab-a": 80, "lab-b": 1}, []string{"lab-b", "lab-a"}},
		{map[string]float64{"lab-a": 2, "lab-b": 90}, []string{"lab-a", "lab-b"}},
	} {
		recordFigures(t, st, tc.figures)
		plan := waitFigures(t, tc.figures)
		require.Len(t, plan.Nodes, 2, "%+v", plan)
		require.Equal(t, string(health.Healthy), plan.Nodes[0].Health, "%+v", plan.Nodes)
		require.Equal(t, plan.Nodes[0].Health, plan.Nodes[1].Health, "both nodes in one state: %+v", plan.Nodes)
		require.Equal(t, tc.first, plan.Included, "%+v", plan.Nodes)
		t.Logf("routing plan: %+v", plan.Nodes)
		res := runQuery(t, `{"sql": "SELECT count() AS neurons FROM neuron"}`)
		require.Equal(t, http.StatusOK, res.status, "%+v", res.err)
		require.Equal(t, tc.first, res.meta.Included, "a query's nodes in the same order")
		status, raw := apiDo(t, http.MethodPost, "/v1/query/explain", `{"sql": "SELECT count() AS neurons FROM neuron"}`)
		require.Equal(t, http.StatusOK, status, string(raw))
		var ex api.ExplainResponse
		require.NoError(t, json.Unmarshal(raw, &ex))
		shares := make([]string, 0, len(ex.Nodes))
		for _, n := range ex.Nodes {
			shares = append(shares, n.Node)
		}
		require.Equal(t, tc.first, shares, "the compiled statement's remote() shares in the same order")
		require.Less(t, strings.Index(ex.Merge, "{"+tc.first[0]+"}"), strings.Index(ex.Merge, "{"+tc.first[1]+"}"), ex.Merge)
	}
}

// TestBenchmarkSchedule: the worker creates the node-benchmark schedule at
// boot with the configured interval, and a run it starts records the
// fleet's figures.
func TestBenchmarkSchedule(t *testing.T) {
	routableNodes(t)
	tc := temporalClient(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	h := tc.ScheduleClient().GetHandle(ctx, workflows.BenchmarkScheduleID)
	desc, err := h.Describe(ctx)
	require.NoError(t, err)
	require.Len(t, desc.Schedule.Spec.Intervals, 1)
	require.Equal(t, 15*time.Minute, desc.Schedule.Spec.Intervals[0].Every, "SYNDB_BENCHMARK_INTERVAL's default")
	action, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	require.True(t, ok, "%T", desc.Schedule.Action)
	require.Equal(t, workflows.NodeBenchmarkName, action.Workflow)

	before := len(desc.Info.RecentActions)
	require.NoError(t, h.Trigger(ctx, client.ScheduleTriggerOptions{}))
	var id, runID string
	require.NoError(t, pollUntil(ctx, func() error {
		d, err := h.Describe(ctx)
		if err != nil {
			return err
		}
		if len(d.Info.RecentActions) <= before {
			return fmt.Errorf("%d actions, waiting for the triggered one", len(d.Info.RecentActions))
		}
		last := d.Info.RecentActions[len(d.Info.RecentActions)-1].StartWorkflowResult
		id, runID = last.WorkflowID, last.FirstExecutionRunID
		return nil
	}))
	require.True(t, strings.HasPrefix(id, workflows.BenchmarkScheduledID+"-"), id)
	var res workflows.NodeBenchmarkResult
	require.NoError(t, tc.GetWorkflow(ctx, id, runID).Get(ctx, &res))
	require.Equal(t, 8, res.Recorded, "%+v", res)
	rows := recordedRows(t, runID)
	require.Len(t, rows, 2)
	for node, kinds := range rows {
		require.Len(t, kinds, len(domain.BenchmarkKinds), node)
	}
	out := benchmarkStatus(t, id)
	require.Equal(t, "completed", out.Status)
}
