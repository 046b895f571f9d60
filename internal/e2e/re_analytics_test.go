package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
)

// deadAddr is a 127.0.0.1 address nothing listens on: a free port, taken
// by nothing.
func deadAddr(t *testing.T) string {
	t.Helper()
	port, err := devstack.FreePort()
	require.NoError(t, err)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// withoutFlight restarts node on the direct data plane with its Flight
// location pointing at a dead port, so the hub can reach its Flight server
// no more, and waits until the hub has heard from the restarted agent.
// Cleanup restarts it as it was, and waits for the hub to hear from it
// again. It returns the dead address.
func withoutFlight(t *testing.T, node string) string {
	t.Helper()
	dead := deadAddr(t)
	restartNodeWith(t, node, map[string]string{"SYNDB_DATA_PLANE": "direct", "SYNDB_FLIGHT_PUBLIC_ADDR": dead})
	return dead
}

// restartNodeWith restarts node's agent with env over its own and waits
// until the hub has heard from it; Cleanup restarts it as it was and waits
// again.
func restartNodeWith(t *testing.T, node string, env map[string]string) {
	t.Helper()
	require.NoError(t, fed.StopNode(t.Context(), node, false))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = fed.StopNode(ctx, node, false)
		restarted := time.Now()
		require.NoError(t, fed.StartNode(ctx, node))
		require.NoError(t, seenSince(ctx, t, node, restarted))
	})
	restarted := time.Now()
	require.NoError(t, fed.StartNodeWith(t.Context(), node, env))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, seenSince(ctx, t, node, restarted))
}

// seenSince polls the federation's health under ctx until node is Healthy
// and was last seen after since: the hub has heard from an agent started
// then.
func seenSince(ctx context.Context, t *testing.T, node string, since time.Time) error {
	t.Helper()
	return pollUntil(ctx, func() error {
		status, raw := apiDoCtx(ctx, t, http.MethodGet, "/v1/federation/health", "")
		if status != http.StatusOK {
			return fmt.Errorf("health: %d %s", status, raw)
		}
		var rep api.HealthReport
		if err := json.Unmarshal(raw, &rep); err != nil {
			return fmt.Errorf("health: %w", err)
		}
		for _, h := range rep.Nodes {
			if h.Name == node && h.State == string(health.Healthy) && h.LastSeen.After(since) {
				return nil
			}
		}
		return fmt.Errorf("the hub has not heard from %s since %s", node, since.Format(time.RFC3339Nano))
	})
}

// nodeSummaryOracle is what ClickHouse itself says of neuron.voxel_volume
// on one node, per dataset.
type nodeSummaryOracle struct {
	count            uint64
	mean, sd, lo, hi float64
	q50, q90         float64
}

func summaryOracle(t *testing.T, node string) map[string]nodeSummaryOracle {
	t.Helper()
	rows, err := nodeConn(t, node).Query(t.Context(), `SELECT toString(dataset_id), count(voxel_volume), avg(voxel_volume),
		stddevPop(voxel_volume), min(voxel_volume), max(voxel_volume), quantiles(0.5, 0.9)(voxel_volume)
		FROM neuron WHERE voxel_volume IS NOT NULL GROUP BY dataset_id`)
	require.NoError(t, err)
	defer func() { _ = rows.Close() }()
	out := map[string]nodeSummaryOracle{}
	for rows.Next() {
		var (
			id string
			o  nodeSummaryOracle
			qs []float64
		)
		require.NoError(t, rows.Scan(&id, &o.count, &o.mean, &o.sd, &o.lo, &o.hi, &qs))
		require.Len(t, qs, 2)
		o.q50, o.q90 = qs[0], qs[1]
		out[id] = o
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, out, "%s has neurons with a voxel_volume", node)
	return out
}

// TestAnalyticsSummaryWithoutFlight: a summary is the node's AnalyticsQuery
// reply, so a summary job completes, with ClickHouse's own numbers, while
// the hub cannot reach a node's Flight server; the synapse graph, which is
// pulled over Flight, cannot have that node.
func TestAnalyticsSummaryWithoutFlight(t *testing.T) {
	routableNodes(t)
	dead := withoutFlight(t, "lab-b")

	js := waitJob(t, startJob(t, `{"analysis": "summary", "table": "neuron", "column": "voxel_volume", "quantiles": [0.5, 0.9]}`).JobID,
		2*time.Minute)
	require.Equal(t, domain.JobCompleted, js.State, "%s %s", js.Error, js.Nodes)
	nodes := jobNodes(t, js)
	for _, n := range []string{"lab-a", "lab-b"} {
		require.Equal(t, domain.JobNodeDone, nodes[n].State, "%s: %s", n, nodes[n].Error)
	}
	var res activities.SummaryResult
	require.NoError(t, json.Unmarshal(js.Result, &res))
	got := map[string]activities.DatasetStats{}
	for _, d := range res.Datasets {
		got[d.DatasetID] = d
	}
	want := 0
	for _, node := range []string{"lab-a", "lab-b"} {
		for id, o := range summaryOracle(t, node) {
			want++
			d, ok := got[id]
			require.True(t, ok, "dataset %s of %s missing from the result", id, node)
			require.Equal(t, node, d.Node)
			require.Equal(t, o.count, d.Count)
			require.InDelta(t, o.mean, d.Mean, 1e-9*math.Max(1, math.Abs(o.mean)))
			require.InDelta(t, o.sd, d.Stddev, 1e-9*math.Max(1, o.sd))
			require.InDelta(t, o.lo, d.Min, 0)
			require.InDelta(t, o.hi, d.Max, 0)
			require.Len(t, d.Quantiles, 2)
			require.InDelta(t, o.q50, d.Quantiles[0], 1e-9*math.Max(1, math.Abs(o.q50)))
			require.InDelta(t, o.q90, d.Quantiles[1], 1e-9*math.Max(1, math.Abs(o.q90)))
		}
	}
	require.Len(t, res.Datasets, want, "every dataset once")

	// Overall, from ClickHouse over both nodes' rows: lab-a's warehouse
	// reads lab-b's through remote().
	var (
		n                uint64
		mean, sd, lo, hi float64
	)
	require.NoError(t, nodeConn(t, "lab-a").QueryRow(t.Context(), fmt.Sprintf(`SELECT count(), avg(v), stddevPop(v), min(v), max(v) FROM (
		SELECT voxel_volume AS v FROM syndb.neuron WHERE voxel_volume IS NOT NULL
		UNION ALL
		SELECT voxel_volume AS v FROM remote('%s', syndb, neuron) WHERE voxel_volume IS NOT NULL)`,
		fed.Stack.Nodes["lab-b"].Addr())).Scan(&n, &mean, &sd, &lo, &hi))
	require.Equal(t, n, res.Overall.Count)
	require.InDelta(t, mean, res.Overall.Mean, 1e-9*math.Max(1, math.Abs(mean)))
	require.InDelta(t, sd, res.Overall.Stddev, 1e-6*math.Max(1, sd))
	require.InDelta(t, lo, res.Overall.Min, 0)
	require.InDelta(t, hi, res.Overall.Max, 0)

	// The synapse graph is bulk, read over Flight: lab-b cannot take part.
	js = waitJob(t, startJob(t, `{"analysis": "synapse_graph"}`).JobID, 2*time.Minute)
	require.Equal(t, domain.JobPartial, js.State, "%s %s", js.Error, js.Nodes)
	nodes = jobNodes(t, js)
	require.Equal(t, domain.JobNodeDone, nodes["lab-a"].State, "%s", nodes["lab-a"].Error)
	require.Equal(t, domain.JobNodeMissing, nodes["lab-b"].State)
	require.Contains(t, nodes["lab-b"].Error, dead, "the Flight location lab-b gave")
	t.Logf("synapse_graph on lab-b without Flight: %s", nodes["lab-b"].Error)
}
