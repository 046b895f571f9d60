package health_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/health"
)

// The fleet's schema version in these tests.
const target = 4

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// The five kinds of observation.
var (
	good = health.Observation{
		Answered: true, Latency: 20 * time.Millisecond, ClickHouseOK: true, SchemaVersion: target,
	}
	slow = health.Observation{
		Answered: true, Latency: 1200 * time.Millisecond, ClickHouseOK: true, SchemaVersion: target,
	}
	chDown = health.Observation{
		Answered: true, Latency: 30 * time.Millisecond, ClickHouseError: "connection refused", SchemaVersion: target,
	}
	behind = health.Observation{
		Answered: true, Latency: 40 * time.Millisecond, ClickHouseOK: true, SchemaVersion: 2,
	}
	// A failed ping carries the time the sweep waited; it is not a latency.
	failed = health.Observation{Latency: 5 * time.Second, Error: "deadline exceeded"}
)

const (
	slowReason   = "slow: 1.2s > 1s"
	chReason     = "clickhouse down: connection refused"
	behindReason = "schema 2 behind target 4"
)

// One node in each state, as a previous sweep left it.
func startNodes() map[health.State]health.Node {
	return map[health.State]health.Node{
		health.Unknown: health.NewNode(t0),
		health.Healthy: {State: health.Healthy, Since: t0, Reason: "ok", LastLatency: 15 * time.Millisecond},
		health.Degraded: {
			State: health.Degraded, Since: t0, Reason: "slow: 1.5s > 1s", LastLatency: 1500 * time.Millisecond,
		},
		health.Unreachable: {
			State: health.Unreachable, Since: t0, Reason: "3 consecutive failed pings: deadline exceeded",
			Failures: 3, Ejections: 1, NextProbe: t0.Add(30 * time.Second),
		},
	}
}

// Every state × every kind of observation, one Step from the nodes of
// startNodes, at the first moment the Unreachable one is due.
func TestStepMatrix(t *testing.T) {
	t.Parallel()
	now := t0.Add(30 * time.Second)
	tests := []struct {
		from   health.State
		obs    string
		o      health.Observation
		change func(n *health.Node) // from the start node to the wanted one, but Since and LastLatency
	}{
		{health.Unknown, "good", good, func(n *health.Node) { n.State, n.Reason = health.Healthy, "ok" }},
		{health.Unknown, "slow", slow, func(n *health.Node) { n.State, n.Reason = health.Degraded, slowReason }},
		{health.Unknown, "clickhouse down", chDown, func(n *health.Node) { n.State, n.Reason = health.Degraded, chReason }},
		{health.Unknown, "schema behind", behind, func(n *health.Node) { n.State, n.Reason = health.Degraded, behindReason }},
		{health.Unknown, "failed", failed, func(n *health.Node) { n.Failures = 1 }},

		{health.Healthy, "good", good, func(*health.Node) {}},
		{health.Healthy, "slow", slow, func(n *health.Node) { n.State, n.Reason = health.Degraded, slowReason }},
		{health.Healthy, "clickhouse down", chDown, func(n *health.Node) { n.State, n.Reason = health.Degraded, chReason }},
		{health.Healthy, "schema behind", behind, func(n *health.Node) { n.State, n.Reason = health.Degraded, behindReason }},
		{health.Healthy, "failed", failed, func(n *health.Node) { n.Failures = 1 }},

		{health.Degraded, "good", good, func(n *health.Node) { n.State, n.Reason = health.Healthy, "ok" }},
		{health.Degraded, "slow", slow, func(n *health.Node) { n.Reason = slowReason }},
		{health.Degraded, "clickhouse down", chDown, func(n *health.Node) { n.Reason = chReason }},
		{health.Degraded, "schema behind", behind, func(n *health.Node) { n.Reason = behindReason }},
		{health.Degraded, "failed", failed, func(n *health.Node) { n.Failures = 1 }},

		// Half-open: one answer is not enough (SuccessesToRestore is 2); probe again next sweep.
		{health.Unreachable, "good", good, func(n *health.Node) { n.Failures, n.Successes, n.NextProbe = 0, 1, now }},
		{health.Unreachable, "slow", slow, func(n *health.Node) { n.Failures, n.Successes, n.NextProbe = 0, 1, now }},
		{health.Unreachable, "clickhouse down", chDown, func(n *health.Node) { n.Failures, n.Successes, n.NextProbe = 0, 1, now }},
		{health.Unreachable, "schema behind", behind, func(n *health.Node) { n.Failures, n.Successes, n.NextProbe = 0, 1, now }},
		{health.Unreachable, "failed", failed, func(n *health.Node) {
			n.Failures, n.Ejections, n.NextProbe = 4, 2, now.Add(60*time.Second)
			n.Reason = "4 consecutive failed pings: deadline exceeded"
		}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[string(tt.from)+"/"+tt.obs] = true
		t.Run(string(tt.from)+"/"+tt.obs, func(t *testing.T) {
			t.Parallel()
			start := startNodes()[tt.from]
			require.True(t, start.Due(now))

			got, tr := health.Step(health.DefaultConfig(), start, tt.o, target, now)

			want := start
			if tt.o.Answered {
				want.LastLatency = tt.o.Latency
			}
			tt.change(&want)
			if want.State == start.State {
				require.Nil(t, tr)
			} else {
				want.Since = now
				require.Equal(t, &health.Transition{
					From: start.State, To: want.State, Reason: want.Reason, Latency: tt.o.Latency, At: now,
				}, tr)
			}
			require.Equal(t, want, got)
		})
	}
	require.Len(t, seen, 4*5, "every state × observation pair is covered once")
}

// sweeper steps one node through sweeps 10 s apart, as the health monitor does.
type sweeper struct {
	t   *testing.T
	c   health.Config
	n   health.Node
	now time.Time
}

func newSweeper(t *testing.T, c health.Config) *sweeper {
	t.Helper()
	require.NoError(t, c.Validate())
	return &sweeper{t: t, c: c, n: health.NewNode(t0), now: t0}
}

// step advances to the next sweep at which the node is due and feeds it o.
func (s *sweeper) step(o health.Observation) *health.Transition {
	s.t.Helper()
	s.now = s.now.Add(10 * time.Second)
	for !s.n.Due(s.now) {
		s.now = s.now.Add(10 * time.Second)
	}
	var tr *health.Transition
	s.n, tr = health.Step(s.c, s.n, o, target, s.now)
	return tr
}

// steps feeds each observation and requires the states after each one.
func (s *sweeper) steps(obs []health.Observation, states ...health.State) {
	s.t.Helper()
	require.Len(s.t, states, len(obs))
	for i, o := range obs {
		s.step(o)
		require.Equal(s.t, states[i], s.n.State, "after observation %d", i)
	}
}

func TestStepSequences(t *testing.T) {
	t.Parallel()
	const (
		U  = health.Unknown
		H  = health.Healthy
		D  = health.Degraded
		UR = health.Unreachable
	)
	tests := []struct {
		name  string
		obs   []health.Observation
		want  []health.State
		check func(t *testing.T, n health.Node)
	}{
		{
			name: "unknown stays unknown until 3 failures",
			obs:  []health.Observation{failed, failed, failed},
			want: []health.State{U, U, UR},
			check: func(t *testing.T, n health.Node) {
				require.Equal(t, 3, n.Failures)
				require.Equal(t, 1, n.Ejections)
				require.Equal(t, "3 consecutive failed pings: deadline exceeded", n.Reason)
			},
		},
		{
			name: "an answer resets failures in unknown",
			obs:  []health.Observation{failed, failed, slow, failed, failed},
			want: []health.State{U, U, D, D, D},
			check: func(t *testing.T, n health.Node) {
				require.Equal(t, 2, n.Failures)
			},
		},
		{
			name: "healthy keeps its state through failures below the threshold",
			obs:  []health.Observation{good, failed, failed, good, failed, failed},
			want: []health.State{H, H, H, H, H, H},
			check: func(t *testing.T, n health.Node) {
				require.Equal(t, 2, n.Failures)
			},
		},
		{
			name: "healthy is ejected after 3 consecutive failures",
			obs:  []health.Observation{good, failed, failed, failed},
			want: []health.State{H, H, H, UR},
		},
		{
			name: "degraded is ejected after 3 consecutive failures",
			obs:  []health.Observation{chDown, failed, failed, failed},
			want: []health.State{D, D, D, UR},
			check: func(t *testing.T, n health.Node) {
				require.Equal(t, chDown.Latency, n.LastLatency, "failures leave LastLatency alone")
			},
		},
		{
			name: "healthy and degraded follow each answer",
			obs:  []health.Observation{good, slow, good, behind, chDown, good},
			want: []health.State{H, D, H, D, D, H},
		},
		{
			name: "restored healthy after 2 good probes",
			obs:  []health.Observation{good, failed, failed, failed, good, good},
			want: []health.State{H, H, H, UR, UR, H},
			check: func(t *testing.T, n health.Node) {
				require.Equal(t, "restored after 2 answered probes", n.Reason)
				require.Zero(t, n.Failures)
				require.Zero(t, n.Successes)
				require.Zero(t, n.Ejections)
				require.True(t, n.NextProbe.IsZero())
			},
		},
		{
			name: "restored degraded when the last probe is degraded",
			obs:  []health.Observation{failed, failed, failed, good, slow},
			want: []health.State{U, U, UR, UR, D},
			check: func(t *testing.T, n health.Node) {
				require.Equal(t, "restored after 2 answered probes; "+slowReason, n.Reason)
				require.Zero(t, n.Ejections)
			},
		},
		{
			name: "a failed probe after a success starts the count again",
			obs:  []health.Observation{failed, failed, failed, good, failed, good, good},
			want: []health.State{U, U, UR, UR, UR, UR, H},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSweeper(t, health.DefaultConfig())
			s.steps(tt.obs, tt.want...)
			if tt.check != nil {
				tt.check(t, s.n)
			}
		})
	}
}

// Envoy's rule: the n-th ejection in a row waits n × ProbeBackoff, capped.
func TestProbeBackoff(t *testing.T) {
	t.Parallel()
	c := health.DefaultConfig()
	s := newSweeper(t, c)
	s.steps([]health.Observation{failed, failed, failed}, health.Unknown, health.Unknown, health.Unreachable)
	require.Equal(t, 30*time.Second, s.n.NextProbe.Sub(s.now))
	require.False(t, s.n.Due(s.now.Add(29*time.Second)))
	require.True(t, s.n.Due(s.now.Add(30*time.Second)))

	for ejections := 2; ejections <= 12; ejections++ {
		require.Nil(t, s.step(failed), "a failed probe is no transition")
		require.Equal(t, health.Unreachable, s.n.State)
		require.Equal(t, ejections, s.n.Ejections)
		require.Zero(t, s.n.Successes)
		want := min(time.Duration(ejections)*30*time.Second, 5*time.Minute)
		require.Equal(t, want, s.n.NextProbe.Sub(s.now), "ejection %d", ejections)
	}

	// A successful probe asks for another at the next sweep, without resetting the backoff.
	require.Nil(t, s.step(good))
	require.Equal(t, s.now, s.n.NextProbe)
	require.True(t, s.n.Due(s.now.Add(10*time.Second)))
	require.Equal(t, 12, s.n.Ejections)
	require.Nil(t, s.step(failed))
	require.Equal(t, 13, s.n.Ejections)
	require.Zero(t, s.n.Successes)
	require.Equal(t, 5*time.Minute, s.n.NextProbe.Sub(s.now))
}

// A node down for a very long time must not overflow the backoff.
func TestProbeBackoffDoesNotOverflow(t *testing.T) {
	t.Parallel()
	now := t0
	n := health.Node{State: health.Unreachable, Since: t0, Failures: 1 << 40, Ejections: 1 << 40, NextProbe: now}
	got, tr := health.Step(health.DefaultConfig(), n, failed, target, now)
	require.Nil(t, tr)
	require.Equal(t, 5*time.Minute, got.NextProbe.Sub(now))
}

func TestStepRestoresAfterOneProbeWhenConfigured(t *testing.T) {
	t.Parallel()
	c := health.DefaultConfig()
	c.SuccessesToRestore = 1
	c.FailuresToEject = 1
	s := newSweeper(t, c)
	s.steps([]health.Observation{failed, behind}, health.Unreachable, health.Degraded)
	require.Equal(t, "restored after 1 answered probe; "+behindReason, s.n.Reason)
}

func TestJudge(t *testing.T) {
	t.Parallel()
	c := health.DefaultConfig()
	tests := []struct {
		name       string
		o          health.Observation
		target     int
		wantState  health.State
		wantReason string
	}{
		{name: "good", o: good, target: target, wantState: health.Healthy, wantReason: "ok"},
		{
			name:      "latency at the threshold is good",
			o:         health.Observation{Answered: true, Latency: time.Second, ClickHouseOK: true, SchemaVersion: target},
			target:    target,
			wantState: health.Healthy, wantReason: "ok",
		},
		{
			name:      "schema ahead of the target is good",
			o:         health.Observation{Answered: true, ClickHouseOK: true, SchemaVersion: target + 1},
			target:    target,
			wantState: health.Healthy, wantReason: "ok",
		},
		{
			name:      "target 0 does not judge the schema",
			o:         health.Observation{Answered: true, ClickHouseOK: true, SchemaVersion: 0},
			target:    0,
			wantState: health.Healthy, wantReason: "ok",
		},
		{
			name:      "clickhouse down without an error",
			o:         health.Observation{Answered: true, SchemaVersion: target},
			target:    target,
			wantState: health.Degraded, wantReason: "clickhouse down",
		},
		{
			name: "several causes are joined in a fixed order",
			o: health.Observation{
				Answered: true, Latency: 1200 * time.Millisecond, ClickHouseError: "connection refused", SchemaVersion: 2,
			},
			target:     target,
			wantState:  health.Degraded,
			wantReason: slowReason + "; " + chReason + "; " + behindReason,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, tr := health.Step(c, health.NewNode(t0), tt.o, tt.target, t0.Add(time.Second))
			require.Equal(t, tt.wantState, got.State)
			require.Equal(t, tt.wantReason, got.Reason)
			require.NotNil(t, tr)
			require.Equal(t, tt.wantReason, tr.Reason)
		})
	}
}

func TestStepTreatsTheZeroNodeAsUnknown(t *testing.T) {
	t.Parallel()
	got, tr := health.Step(health.DefaultConfig(), health.Node{}, good, target, t0)
	require.Equal(t, health.Healthy, got.State)
	require.Equal(t, &health.Transition{From: "", To: health.Healthy, Reason: "ok", Latency: good.Latency, At: t0}, tr)
}

func TestNewNodeAndDue(t *testing.T) {
	t.Parallel()
	n := health.NewNode(t0)
	require.Equal(t, health.Unknown, n.State)
	require.Equal(t, t0, n.Since)
	require.NotEmpty(t, n.Reason)

	probe := t0.Add(time.Minute)
	tests := []struct {
		state health.State
		now   time.Time
		want  bool
	}{
		{health.Unknown, t0, true},
		{health.Healthy, t0, true},
		{health.Degraded, t0, true},
		{health.Unreachable, probe.Add(-time.Nanosecond), false},
		{health.Unreachable, probe, true},
		{health.Unreachable, probe.Add(time.Second), true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s at %s", tt.state, tt.now.Sub(t0)), func(t *testing.T) {
			t.Parallel()
			n := health.Node{State: tt.state, Since: t0, NextProbe: probe}
			require.Equal(t, tt.want, n.Due(tt.now))
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, health.DefaultConfig().Validate())
	tests := []struct {
		name   string
		change func(c *health.Config)
		want   []string
	}{
		{"slow latency", func(c *health.Config) { c.SlowLatency = 0 }, []string{"SlowLatency must be positive, got 0s"}},
		{"failures", func(c *health.Config) { c.FailuresToEject = 0 }, []string{"FailuresToEject must be positive, got 0"}},
		{"successes", func(c *health.Config) { c.SuccessesToRestore = -1 }, []string{"SuccessesToRestore must be positive, got -1"}},
		{"probe backoff", func(c *health.Config) { c.ProbeBackoff = -time.Second }, []string{"ProbeBackoff must be positive, got -1s"}},
		{
			"max below base", func(c *health.Config) { c.MaxProbeBackoff = 10 * time.Second },
			[]string{"MaxProbeBackoff (10s) must be at least ProbeBackoff (30s)"},
		},
		{"zero config", func(c *health.Config) { *c = health.Config{} }, []string{
			"SlowLatency", "FailuresToEject", "SuccessesToRestore", "ProbeBackoff",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := health.DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			require.ErrorIs(t, err, health.ErrInvalidConfig)
			for _, w := range tt.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestStepDoesNotMutateItsInput(t *testing.T) {
	t.Parallel()
	for state, n := range startNodes() {
		for _, o := range []health.Observation{good, slow, chDown, behind, failed} {
			before := n
			_, _ = health.Step(health.DefaultConfig(), n, o, target, t0.Add(time.Hour))
			require.Equal(t, before, n, "state %s", state)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	n := health.Node{
		State:       health.Unreachable,
		Since:       t0,
		Reason:      "3 consecutive failed pings: deadline exceeded",
		Failures:    3,
		Successes:   1,
		Ejections:   2,
		NextProbe:   t0.Add(time.Minute),
		LastLatency: 12345 * time.Microsecond,
	}
	b, err := json.Marshal(n)
	require.NoError(t, err)
	require.Contains(t, string(b), `"next_probe":"2025-06-01T12:01:00Z"`)
	var got health.Node
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, n, got)

	var fresh health.Node
	b, err = json.Marshal(health.NewNode(t0))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &fresh))
	require.Equal(t, health.NewNode(t0), fresh, "a zero NextProbe survives too")

	c := health.DefaultConfig()
	b, err = json.Marshal(c)
	require.NoError(t, err)
	var gotConfig health.Config
	require.NoError(t, json.Unmarshal(b, &gotConfig))
	require.Equal(t, c, gotConfig)
}

// A long seeded random run checks the invariants after every step, and that
// the same input always gives the same output.
func TestStepInvariants(t *testing.T) {
	t.Parallel()
	c := health.DefaultConfig()
	kinds := []health.Observation{good, slow, chDown, behind, failed}

	run := func(seed uint64) ([]health.Transition, health.Node) {
		rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
		n := health.NewNode(t0)
		now := t0
		var transitions []health.Transition
		for range 20_000 {
			now = now.Add(10 * time.Second)
			if !n.Due(now) {
				continue
			}
			o := kinds[rng.IntN(len(kinds))]
			if rng.IntN(3) > 0 { // runs of failures, to reach Unreachable often
				o = failed
			}
			o.Latency += time.Duration(rng.IntN(1000)) * time.Microsecond

			next, tr := health.Step(c, n, o, target, now)
			again, trAgain := health.Step(c, n, o, target, now)
			require.Equal(t, next, again, "same input, same output")
			require.Equal(t, tr, trAgain)

			require.True(t, next.State.Valid())
			if next.State != health.Unreachable {
				require.Less(t, next.Failures, c.FailuresToEject)
				require.Zero(t, next.Successes)
				require.Zero(t, next.Ejections)
			} else {
				require.Less(t, next.Successes, c.SuccessesToRestore)
				require.Positive(t, next.Ejections)
				require.False(t, next.NextProbe.Before(now))
				require.LessOrEqual(t, next.NextProbe.Sub(now), c.MaxProbeBackoff)
			}
			if o.Answered {
				require.Equal(t, o.Latency, next.LastLatency)
				require.Zero(t, next.Failures)
			} else {
				require.Equal(t, n.LastLatency, next.LastLatency)
				require.Equal(t, n.Failures+1, next.Failures)
			}
			if tr == nil {
				require.Equal(t, n.State, next.State)
				require.Equal(t, n.Since, next.Since, "Since moves only on a transition")
			} else {
				require.NotEqual(t, tr.From, tr.To)
				require.Equal(t, n.State, tr.From)
				require.Equal(t, next.State, tr.To)
				require.Equal(t, next.Reason, tr.Reason)
				require.Equal(t, now, tr.At)
				require.Equal(t, now, next.Since)
				transitions = append(transitions, *tr)
			}
			n = next
		}
		return transitions, n
	}

	trs, last := run(1)
	seen := map[[2]health.State]bool{}
	for _, tr := range trs {
		seen[[2]health.State{tr.From, tr.To}] = true
	}
	for _, edge := range [][2]health.State{ // Unknown is left once, at the start: not counted
		{health.Healthy, health.Degraded}, {health.Degraded, health.Healthy},
		{health.Healthy, health.Unreachable}, {health.Degraded, health.Unreachable},
		{health.Unreachable, health.Healthy}, {health.Unreachable, health.Degraded},
	} {
		require.True(t, seen[edge], "the run exercises %s → %s", edge[0], edge[1])
	}

	trsAgain, lastAgain := run(1)
	require.Equal(t, trs, trsAgain, "a replay makes the same transitions")
	require.Equal(t, last, lastAgain)
}
