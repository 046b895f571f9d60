package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/workflows"
)

func healthOf(t testing.TB, name string) api.NodeHealth {
	t.Helper()
	status, raw := apiDo(t, http.MethodGet, "/v1/federation/health", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var rep api.HealthReport
	require.NoError(t, json.Unmarshal(raw, &rep))
	for _, n := range rep.Nodes {
		if n.Name == name {
			return n
		}
	}
	return api.NodeHealth{}
}

// waitHealth polls GET /v1/federation/health until node is in state.
func waitHealth(t testing.TB, node string, state health.State, within time.Duration) api.NodeHealth {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	var last api.NodeHealth
	err := pollUntil(ctx, func() error {
		last = healthOf(t, node)
		if last.State != string(state) {
			return fmt.Errorf("%s is %s (%s)", node, last.State, last.Reason)
		}
		return nil
	})
	require.NoError(t, err, "%s never became %s", node, state)
	return last
}

// monitorSweeps returns the health monitor's sweep count.
func monitorSweeps(t *testing.T) int64 {
	t.Helper()
	v, err := temporalClient(t).QueryWorkflow(t.Context(), workflows.HealthMonitorID, "", workflows.HealthQuery)
	require.NoError(t, err)
	var tab workflows.HealthTable
	require.NoError(t, v.Get(&tab))
	return tab.Sweeps
}

func history(t *testing.T, node string) []string {
	t.Helper()
	status, raw := apiDo(t, http.MethodGet, "/v1/federation/clusters/"+node+"/health/history?limit=1000", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var h api.HealthHistory
	require.NoError(t, json.Unmarshal(raw, &h))
	out := make([]string, 0, len(h.Transitions))
	for i := len(h.Transitions) - 1; i >= 0; i-- { // oldest first
		out = append(out, h.Transitions[i].From+"->"+h.Transitions[i].To)
	}
	return out
}

// TestHealthMonitor drives a node through every state on the real stack:
// its agent stopped (Unreachable within the configured sweeps), restarted
// (Healthy again through half-open probes), its ClickHouse stopped
// (Degraded), its answers slowed (Degraded); each transition is audited once.
func TestHealthMonitor(t *testing.T) {
	const failures = 3 // the breaker's default, used by the test federation
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}

	// The agent stops: Unreachable within the configured number of sweeps
	// (a ping in flight at the stop may still have been answered: one more).
	require.NoError(t, fed.StopNode(t.Context(), "lab-a", false))
	stopped := monitorSweeps(t)
	h := waitHealth(t, "lab-a", health.Unreachable, time.Minute)
	took := monitorSweeps(t) - stopped
	t.Logf("lab-a Unreachable after %d sweeps: %s", took, h.Reason)
	require.LessOrEqual(t, took, int64(failures+2))
	require.Contains(t, h.Reason, "failed ping")

	// Back: Healthy again, through the half-open probes.
	require.NoError(t, fed.StartNode(t.Context(), "lab-a"))
	h = waitHealth(t, "lab-a", health.Healthy, time.Minute)
	require.Contains(t, h.Reason, "restored")

	// Its ClickHouse stops: the agent answers, the warehouse does not.
	require.NoError(t, fed.Stack.Nodes["lab-a"].Stop(t.Context()))
	h = waitHealth(t, "lab-a", health.Degraded, time.Minute)
	require.Contains(t, h.Reason, "clickhouse")
	require.NoError(t, fed.Stack.Nodes["lab-a"].Start(t.Context()))
	waitHealth(t, "lab-a", health.Healthy, time.Minute)

	// Slow answers: Degraded, then Healthy once fast again.
	require.NoError(t, fed.StopNode(t.Context(), "lab-b", false))
	require.NoError(t, fed.StartNodeWith(t.Context(), "lab-b", map[string]string{"SYNDB_NODE_ANSWER_DELAY": "1500ms"}))
	h = waitHealth(t, "lab-b", health.Degraded, time.Minute)
	require.Contains(t, h.Reason, "slow")
	require.NoError(t, fed.StopNode(t.Context(), "lab-b", false))
	require.NoError(t, fed.StartNode(t.Context(), "lab-b"))
	waitHealth(t, "lab-b", health.Healthy, time.Minute)

	// The audit: each transition once, in order.
	require.Equal(t, []string{"unknown->healthy", "healthy->unreachable", "unreachable->healthy", "healthy->degraded", "degraded->healthy"},
		history(t, "lab-a"))
	require.Equal(t, []string{"unknown->healthy", "healthy->degraded", "degraded->healthy"}, history(t, "lab-b"))

	// A sweep on demand.
	before := monitorSweeps(t)
	status, raw := apiDo(t, http.MethodPost, "/v1/federation/health/sweep", "")
	require.Equal(t, http.StatusAccepted, status, string(raw))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		if monitorSweeps(t) <= before {
			return fmt.Errorf("no sweep since %d", before)
		}
		return nil
	}))
	// go tool task record-history-health: the monitor's history so far.
	recordHistoryTo(t, temporalClient(t), workflows.HealthMonitorID, "", os.Getenv("SYNDB_RECORD_HEALTH_HISTORY"))
}
