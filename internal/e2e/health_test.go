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

// healthStateCtx is a node's health state under ctx (cleanups run after
// t.Context() has ended).
func healthStateCtx(ctx context.Context, t testing.TB, name string) (string, error) {
	status, raw := apiDoCtx(ctx, t, http.MethodGet, "/v1/federation/health", "")
	if status != http.StatusOK {
		return "", fmt.Errorf("health: %d %s", status, raw)
	}
	var rep api.HealthReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return "", fmt.Errorf("health: %w", err)
	}
	for _, n := range rep.Nodes {
		if n.Name == name {
			return n.State, nil
		}
	}
	return "", fmt.Errorf("%s is not in the health report", name)
}

// nodeAgent is a node's agent as one test changes it. Every stop, and every
// start with other settings, is undone in t.Cleanup: the agent runs again
// with its usual settings and is healthy, so a failing test leaves the
// federation as the next test expects it.
type nodeAgent struct {
	t    *testing.T
	name string
	// changed: the agent is stopped or runs with other settings.
	changed bool
}

// agent returns the guard of node name's agent for the test.
func agent(t *testing.T, name string) *nodeAgent {
	t.Helper()
	a := &nodeAgent{t: t, name: name}
	t.Cleanup(func() {
		if !a.changed {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = fed.StopNode(ctx, name, false) // not running is fine
		if err := fed.StartNode(ctx, name); err != nil {
			t.Errorf("restore %s: %v", name, err)
			return
		}
		err := pollUntil(ctx, func() error {
			state, err := healthStateCtx(ctx, t, name)
			if err == nil && state != string(health.Healthy) {
				err = fmt.Errorf("%s is %s", name, state)
			}
			return err
		})
		if err != nil {
			t.Errorf("restore %s: not healthy again: %v", name, err)
		}
	})
	return a
}

// Stop stops the agent gracefully.
func (a *nodeAgent) Stop(ctx context.Context) {
	a.t.Helper()
	a.changed = true
	require.NoError(a.t, fed.StopNode(ctx, a.name, false))
}

// Start starts the stopped agent with its usual settings.
func (a *nodeAgent) Start(ctx context.Context) {
	a.t.Helper()
	require.NoError(a.t, fed.StartNode(ctx, a.name))
	a.changed = false
}

// StartWith starts the stopped agent with extra settings, undone at cleanup.
func (a *nodeAgent) StartWith(ctx context.Context, env map[string]string) {
	a.t.Helper()
	a.changed = true
	require.NoError(a.t, fed.StartNodeWith(ctx, a.name, env))
}

// Restart stops the agent and starts it with its usual settings.
func (a *nodeAgent) Restart(ctx context.Context) {
	a.t.Helper()
	a.Stop(ctx)
	a.Start(ctx)
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
	// Other tests stop nodes too: this one's transitions are those after now.
	seenA, seenB := len(history(t, "lab-a")), len(history(t, "lab-b"))
	labA, labB := agent(t, "lab-a"), agent(t, "lab-b")

	// The agent stops: Unreachable within the configured number of sweeps
	// (a ping in flight at the stop may still have been answered: one more).
	labA.Stop(t.Context())
	stopped := monitorSweeps(t)
	h := waitHealth(t, "lab-a", health.Unreachable, time.Minute)
	took := monitorSweeps(t) - stopped
	t.Logf("lab-a Unreachable after %d sweeps: %s", took, h.Reason)
	require.LessOrEqual(t, took, int64(failures+2))
	require.Contains(t, h.Reason, "failed ping")

	// Back: Healthy again, through the half-open probes.
	labA.Start(t.Context())
	h = waitHealth(t, "lab-a", health.Healthy, time.Minute)
	require.Contains(t, h.Reason, "restored")

	// Its ClickHouse stops: the agent answers, the warehouse does not.
	chA := fed.Stack.Nodes["lab-a"]
	require.NoError(t, chA.Stop(t.Context()))
	chStopped := true
	t.Cleanup(func() {
		if chStopped {
			require.NoError(t, chA.Start(context.Background()))
		}
	})
	h = waitHealth(t, "lab-a", health.Degraded, time.Minute)
	require.Contains(t, h.Reason, "clickhouse")
	require.NoError(t, chA.Start(t.Context()))
	chStopped = false
	waitHealth(t, "lab-a", health.Healthy, time.Minute)

	// Slow answers: Degraded, then Healthy once fast again.
	labB.Stop(t.Context())
	labB.StartWith(t.Context(), map[string]string{"SYNDB_NODE_ANSWER_DELAY": "1500ms"})
	h = waitHealth(t, "lab-b", health.Degraded, time.Minute)
	require.Contains(t, h.Reason, "slow")
	labB.Restart(t.Context())
	waitHealth(t, "lab-b", health.Healthy, time.Minute)

	// The audit: each transition once, in order; the first ever is the
	// node's first sweep.
	histA, histB := history(t, "lab-a"), history(t, "lab-b")
	require.Equal(t, "unknown->healthy", histA[0])
	require.Equal(t, "unknown->healthy", histB[0])
	require.Equal(t, []string{"healthy->unreachable", "unreachable->healthy", "healthy->degraded", "degraded->healthy"}, histA[seenA:])
	require.Equal(t, []string{"healthy->degraded", "degraded->healthy"}, histB[seenB:])

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
	// go tool task record-history-health -- NAME.json: the monitor's history so far.
	recordHistoryTo(t, temporalClient(t), workflows.HealthMonitorID, "", os.Getenv("SYNDB_RECORD_HEALTH_HISTORY"))
}
