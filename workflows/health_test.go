package workflows_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/workflows"
)

// fakeSweeps scripts each node's answers, by the number of times the node
// was pinged, and records what the monitor writes.
type fakeSweeps struct {
	mu       sync.Mutex
	script   map[string]func(call int) health.Observation
	calls    map[string]int
	skips    [][]string
	times    []time.Time
	recorded []domain.Transition
	pings    []domain.PingSummary
	// paths is each node's connection path, reported with its answers.
	paths map[string]string
	// recordedAs is each node's state in the registry, by sweep (1-based):
	// what the sweep reports as NodePing.Recorded.
	recordedAs func(node string, sweep int) health.State
	target     int
}

func good() health.Observation {
	return health.Observation{Answered: true, Latency: 5 * time.Millisecond, ClickHouseOK: true, SchemaVersion: 4}
}

func failed() health.Observation { return health.Observation{Error: "dial backoff"} }

func (f *fakeSweeps) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterWorkflowWithOptions(workflows.HealthMonitor, workflow.RegisterOptions{Name: workflows.HealthMonitorName})
	env.RegisterActivityWithOptions(func(ctx context.Context, p domain.SweepParams) (domain.SweepResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.skips = append(f.skips, p.Skip)
		f.times = append(f.times, activity.GetInfo(ctx).StartedTime)
		res := domain.SweepResult{Target: f.target}
		names := make([]string, 0, len(f.script))
		for name := range f.script {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if slices.Contains(p.Skip, name) {
				res.Skipped = append(res.Skipped, name)
				continue
			}
			f.calls[name]++
			ping := domain.NodePing{Name: name, Observation: f.script[name](f.calls[name])}
			if ping.Answered {
				ping.Path = f.paths[name]
			}
			if f.recordedAs != nil {
				ping.Recorded = f.recordedAs(name, len(f.skips))
			}
			res.Nodes = append(res.Nodes, ping)
		}
		return res, nil
	}, activity.RegisterOptions{Name: domain.HealthSweepName})
	env.RegisterActivityWithOptions(func(_ context.Context, p domain.RecordHealthParams) (domain.RecordHealthResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.recorded = append(f.recorded, p.Transitions...)
		f.pings = append(f.pings, p.Pings...)
		return domain.RecordHealthResult{Recorded: len(p.Transitions)}, nil
	}, activity.RegisterOptions{Name: domain.RecordHealthName})
}

func newSweeps(script map[string]func(int) health.Observation) *fakeSweeps {
	return &fakeSweeps{script: script, calls: map[string]int{}, target: 4}
}

func breakerForTest() health.Config {
	return health.Config{SlowLatency: time.Second, FailuresToEject: 3, SuccessesToRestore: 2,
		ProbeBackoff: 30 * time.Second, MaxProbeBackoff: 5 * time.Minute}
}

// runMonitor runs the monitor for sweeps sweeps (it then continues as new).
func runMonitor(t *testing.T, f *fakeSweeps, p workflows.HealthMonitorParams) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.register(env)
	env.ExecuteWorkflow(workflows.HealthMonitorName, p)
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "the monitor only ever continues as new: %v", env.GetWorkflowError())
	return env
}

func transitionsOf(f *fakeSweeps, node string) []string {
	var out []string
	for _, t := range f.recorded {
		if t.Node == node {
			out = append(out, string(t.From)+"->"+string(t.To))
		}
	}
	return out
}

func TestHealthMonitorBreaker(t *testing.T) {
	t.Parallel()
	f := newSweeps(map[string]func(int) health.Observation{
		// a: two good pings, three failures, then good again.
		"a": func(call int) health.Observation {
			if call >= 3 && call <= 5 {
				return failed()
			}
			return good()
		},
		// b: answers, but slowly.
		"b": func(int) health.Observation { o := good(); o.Latency = 2 * time.Second; return o },
		// c: its ClickHouse is down.
		"c": func(int) health.Observation {
			o := good()
			o.ClickHouseOK, o.ClickHouseError = false, "connection refused"
			return o
		},
	})
	runMonitor(t, f, workflows.HealthMonitorParams{Interval: 10 * time.Second, Breaker: breakerForTest(), SweepsPerRun: 10})

	require.Equal(t, []string{"unknown->healthy", "healthy->unreachable", "unreachable->healthy"}, transitionsOf(f, "a"))
	require.Equal(t, []string{"unknown->degraded"}, transitionsOf(f, "b"))
	require.Equal(t, []string{"unknown->degraded"}, transitionsOf(f, "c"))
	// Ejected at the 5th sweep (t=40s) for 30s: the sweeps at 50s and 60s
	// skip it; the half-open probes at 70s and 80s bring it back.
	require.Equal(t, []string{"a"}, f.skips[5])
	require.Equal(t, []string{"a"}, f.skips[6])
	require.Empty(t, f.skips[7])
	require.Equal(t, 8, f.calls["a"], "a was not pinged while ejected (2 of 10 sweeps)")
	require.Equal(t, 10, f.calls["b"])
	for _, tr := range f.recorded {
		if tr.Node == "b" {
			require.Contains(t, tr.Reason, "slow")
		}
		if tr.Node == "c" {
			require.Contains(t, tr.Reason, "connection refused")
		}
	}
}

func TestHealthMonitorSchemaBehindIsDegraded(t *testing.T) {
	t.Parallel()
	f := newSweeps(map[string]func(int) health.Observation{
		"old": func(int) health.Observation { o := good(); o.SchemaVersion = 2; return o },
	})
	runMonitor(t, f, workflows.HealthMonitorParams{Interval: time.Second, Breaker: breakerForTest(), SweepsPerRun: 2})
	require.Equal(t, []string{"unknown->degraded"}, transitionsOf(f, "old"))
	require.Contains(t, f.recorded[0].Reason, "schema")
}

func TestHealthMonitorSweepNow(t *testing.T) {
	t.Parallel()
	f := newSweeps(map[string]func(int) health.Observation{"a": func(int) health.Observation { return good() }})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.register(env)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SweepNowSignal, nil) }, time.Minute)
	env.ExecuteWorkflow(workflows.HealthMonitorName, workflows.HealthMonitorParams{Interval: time.Hour, Breaker: breakerForTest(), SweepsPerRun: 2})
	require.True(t, env.IsWorkflowCompleted())
	require.Len(t, f.times, 2)
	require.Less(t, f.times[1].Sub(f.times[0]), 2*time.Minute, "the signal started the second sweep an hour early")
}

// TestHealthMonitorRecordsPaths: each answered ping's connection path
// reaches RecordHealth with it; an unanswered one carries none.
func TestHealthMonitorRecordsPaths(t *testing.T) {
	t.Parallel()
	f := newSweeps(map[string]func(int) health.Observation{
		"nat":    func(int) health.Observation { return good() },
		"direct": func(int) health.Observation { return good() },
		"down":   func(int) health.Observation { return failed() },
	})
	f.paths = map[string]string{"nat": "relayed", "direct": "direct", "down": "direct"}
	runMonitor(t, f, workflows.HealthMonitorParams{Interval: 10 * time.Second, Breaker: breakerForTest(), SweepsPerRun: 2})
	got := map[string][]string{}
	for _, p := range f.pings {
		got[p.Node] = append(got[p.Node], p.Path)
	}
	require.Equal(t, map[string][]string{"nat": {"relayed", "relayed"}, "direct": {"direct", "direct"}, "down": {"", ""}}, got)
}

func TestHealthMonitorQueryAndCarriedState(t *testing.T) {
	t.Parallel()
	f := newSweeps(map[string]func(int) health.Observation{"a": func(int) health.Observation { return good() }})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.register(env)
	var mid workflows.HealthTable
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.HealthQuery)
		require.NoError(t, err)
		require.NoError(t, v.Get(&mid))
	}, 15*time.Second)
	// Carried state from an earlier run: a is already Healthy.
	carried := []workflows.NodeHealth{{Name: "a", Node: health.Node{State: health.Healthy}}}
	env.ExecuteWorkflow(workflows.HealthMonitorName, workflows.HealthMonitorParams{Interval: 10 * time.Second,
		Breaker: breakerForTest(), SweepsPerRun: 3, Nodes: carried, Sweeps: 41})
	require.True(t, env.IsWorkflowCompleted())
	require.Len(t, mid.Nodes, 1)
	require.Equal(t, health.Healthy, mid.Nodes[0].State)
	require.Equal(t, int64(43), mid.Sweeps, "sweeps count on across runs")
	require.Empty(t, f.recorded, "a carried Healthy node that stays healthy records no transition")
}

// TestHealthMonitorReenrolledNodeStartsAfresh: a node the breaker holds
// Healthy is revoked and enrolled again under its name between two sweeps,
// so the registry says Unknown. The breaker starts it afresh and records
// the unknown->healthy transition that puts the registry right, once.
func TestHealthMonitorReenrolledNodeStartsAfresh(t *testing.T) {
	t.Parallel()
	f := newSweeps(map[string]func(int) health.Observation{"a": func(int) health.Observation { return good() }})
	f.recordedAs = func(_ string, sweep int) health.State {
		if sweep == 1 || sweep == 3 {
			return health.Unknown // first registration, then re-enrolment
		}
		return health.Healthy
	}
	runMonitor(t, f, workflows.HealthMonitorParams{Interval: 10 * time.Second, Breaker: breakerForTest(), SweepsPerRun: 4})
	require.Equal(t, []string{"unknown->healthy", "unknown->healthy"}, transitionsOf(f, "a"))
}

// TestHealthMonitorCarriedStateKeptWhenRegistryAgrees: the same carried
// Healthy node with the registry saying Healthy records nothing.
func TestHealthMonitorCarriedStateKeptWhenRegistryAgrees(t *testing.T) {
	t.Parallel()
	f := newSweeps(map[string]func(int) health.Observation{"a": func(int) health.Observation { return good() }})
	f.recordedAs = func(string, int) health.State { return health.Healthy }
	carried := []workflows.NodeHealth{{Name: "a", Node: health.Node{State: health.Healthy}}}
	runMonitor(t, f, workflows.HealthMonitorParams{Interval: 10 * time.Second, Breaker: breakerForTest(), SweepsPerRun: 3, Nodes: carried})
	require.Empty(t, f.recorded)
}

func TestHealthMonitorRejectsBadBreaker(t *testing.T) {
	t.Parallel()
	f := newSweeps(nil)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.register(env)
	bad := breakerForTest()
	bad.FailuresToEject = 0
	env.ExecuteWorkflow(workflows.HealthMonitorName, workflows.HealthMonitorParams{Interval: time.Second, Breaker: bad})
	require.Error(t, env.GetWorkflowError())
	require.Contains(t, env.GetWorkflowError().Error(), "invalid health config")
}
