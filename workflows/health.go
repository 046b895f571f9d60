package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
)

// Health monitor defaults.
const (
	// DefaultHealthInterval is the time between sweeps (health.DefaultInterval).
	DefaultHealthInterval = health.DefaultInterval
	// DefaultSweepsPerRun bounds a run's history: each sweep adds a
	// constant dozen events whatever the fleet's size, so 500 sweeps stay
	// well under Temporal's 10,240-event warning before continue-as-new.
	DefaultSweepsPerRun = 500
	// maxHistoryEvents continues as new earlier if a run's history grows
	// past it anyway (signals, retries).
	maxHistoryEvents = 8000
	// changeReenrolled: a node the registry holds Unknown while its breaker
	// is past Unknown starts afresh (NodePing.Recorded).
	changeReenrolled = "reenrolled-node-resets"
)

// HealthMonitorParams is the input of the health monitor, and the state it
// carries across continue-as-new.
type HealthMonitorParams struct {
	Interval     time.Duration `json:"interval"`
	Breaker      health.Config `json:"breaker"`
	SweepsPerRun int           `json:"sweeps_per_run,omitempty"`
	Nodes        []NodeHealth  `json:"nodes,omitempty"`
	Sweeps       int64         `json:"sweeps,omitempty"`
	LastSweep    time.Time     `json:"last_sweep,omitzero"`
}

// NodeHealth is one node's breaker state, by name.
type NodeHealth struct {
	Name string `json:"name"`
	health.Node
	// ClickHouseLatency is the node's own ClickHouse round trip, as the
	// node reported it at the last answered ping.
	ClickHouseLatency time.Duration `json:"clickhouse_latency,omitempty"`
}

// HealthTable is the answer of the HealthQuery: every node's state.
type HealthTable struct {
	Sweeps    int64        `json:"sweeps"`
	LastSweep time.Time    `json:"last_sweep"`
	Nodes     []NodeHealth `json:"nodes"`
}

// HealthMonitor sweeps the fleet forever: each sweep pings every node in one
// activity, feeds the answers to the circuit breaker (internal/health), and
// records the transitions and pings in one more activity. Unreachable nodes
// are probed only when their half-open probe is due. A sweep-now signal
// starts the next sweep at once; the health query returns the table. The run
// continues as new every SweepsPerRun sweeps, carrying the breaker states.
func HealthMonitor(ctx workflow.Context, p HealthMonitorParams) error {
	log := workflow.GetLogger(ctx)
	if p.Interval <= 0 {
		p.Interval = DefaultHealthInterval
	}
	if p.SweepsPerRun <= 0 {
		p.SweepsPerRun = DefaultSweepsPerRun
	}
	if p.Breaker == (health.Config{}) {
		p.Breaker = health.DefaultConfig()
	}
	if err := p.Breaker.Validate(); err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), domain.ErrTypeInvalid, err)
	}
	nodes := p.Nodes
	err := workflow.SetQueryHandler(ctx, HealthQuery, func() (HealthTable, error) {
		return HealthTable{Sweeps: p.Sweeps, LastSweep: p.LastSweep, Nodes: nodes}, nil
	})
	if err != nil {
		return fmt.Errorf("register health query: %w", err)
	}
	sweepNow := workflow.GetSignalChannel(ctx, SweepNowSignal)
	sweepCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: max(2*time.Minute, 3*p.Interval),
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 2},
	})
	recordCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumAttempts: 5},
	})

	reset := workflow.GetVersion(ctx, changeReenrolled, workflow.DefaultVersion, 1) >= 1
	for run := 0; ; run++ {
		if run >= p.SweepsPerRun || workflow.GetInfo(ctx).GetCurrentHistoryLength() > maxHistoryEvents {
			// Drain signals so none is lost across the new run's start.
			for sweepNow.ReceiveAsync(nil) {
			}
			p.Nodes = nodes
			log.Info("health monitor continuing as new", "sweeps", p.Sweeps, "nodes", len(nodes))
			return workflow.NewContinueAsNewError(ctx, HealthMonitorName, p)
		}
		now := workflow.Now(ctx)
		var skip []string
		for _, n := range nodes {
			if !n.Due(now) {
				skip = append(skip, n.Name)
			}
		}
		var res domain.SweepResult
		if err := workflow.ExecuteActivity(sweepCtx, domain.HealthSweepName, domain.SweepParams{Skip: skip}).Get(ctx, &res); err != nil {
			log.Warn("health sweep failed; next sweep as usual", "err", err)
		} else {
			var rec domain.RecordHealthParams
			nodes, rec = step(p.Breaker, nodes, res, workflow.Now(ctx), reset)
			p.Sweeps++
			p.LastSweep = workflow.Now(ctx)
			if len(rec.Transitions)+len(rec.Pings) > 0 {
				var out domain.RecordHealthResult
				if err := workflow.ExecuteActivity(recordCtx, domain.RecordHealthName, rec).Get(ctx, &out); err != nil {
					// The breaker's state stays; PostgreSQL catches up at the
					// next transition and the audit keeps what was written.
					log.Warn("record health failed", "err", err)
				}
			}
		}
		timer := workflow.NewTimer(ctx, p.Interval)
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(timer, func(workflow.Future) {})
		sel.AddReceive(sweepNow, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			for c.ReceiveAsync(nil) {
			}
		})
		sel.Select(ctx)
	}
}

// step feeds a sweep's results to the breakers. Nodes not in the sweep
// (skipped) keep their state; nodes gone from the registry are dropped;
// new ones start Unknown, and so, with reset, do nodes the registry holds
// Unknown while their breaker is past it (enrolled again: a new member under
// an old name). It is pure: same input, same output.
func step(c health.Config, nodes []NodeHealth, res domain.SweepResult, now time.Time, reset bool) ([]NodeHealth, domain.RecordHealthParams) {
	rec := domain.RecordHealthParams{Target: res.Target}
	prev := map[string]NodeHealth{}
	for _, n := range nodes {
		prev[n.Name] = n
	}
	next := make([]NodeHealth, 0, len(res.Nodes)+len(res.Skipped))
	for _, name := range res.Skipped {
		if n, ok := prev[name]; ok {
			next = append(next, n)
		}
	}
	for _, ping := range res.Nodes {
		p, ok := prev[ping.Name]
		if ok && reset && ping.Recorded == health.Unknown && p.State != health.Unknown {
			ok = false
		}
		if !ok {
			p = NodeHealth{Name: ping.Name, Node: health.NewNode(now)}
		}
		n, tr := health.Step(c, p.Node, ping.Observation, res.Target, now)
		chLatency := p.ClickHouseLatency
		if ping.Answered {
			chLatency = ping.ClickHouseLatency
		}
		next = append(next, NodeHealth{Name: ping.Name, Node: n, ClickHouseLatency: chLatency})
		rec.Pings = append(rec.Pings, domain.PingSummary{Node: ping.Name, Answered: ping.Answered,
			LatencyMS: ms(ping.Latency), SchemaVersion: ping.SchemaVersion, Path: ping.Path, Transport: ping.Transport})
		if tr != nil {
			rec.Transitions = append(rec.Transitions, domain.Transition{Node: ping.Name, From: fromState(tr.From), To: tr.To,
				Reason: tr.Reason, LatencyMS: ms(tr.Latency), At: tr.At})
		}
	}
	slices.SortFunc(next, func(a, b NodeHealth) int { return strings.Compare(a.Name, b.Name) })
	return next, rec
}

// fromState maps the zero state of a breaker that never ran to Unknown,
// the registry's initial state.
func fromState(s health.State) health.State {
	if s == "" {
		return health.Unknown
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
