package activities

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/internal/wire"
)

// healthStore is what the health activities need of the registry.
type healthStore interface {
	Clusters(ctx context.Context, activeOnly bool) ([]domain.Cluster, error)
	SchemaTarget(ctx context.Context) (int, error)
	RecordHealth(ctx context.Context, transitions []store.HealthTransition, pings []store.PingResult) ([]store.HealthTransition, error)
}

// pathReporter says which path the hub's connection to a node takes, and
// over which transport (p2p.Client.Route).
type pathReporter interface {
	Route(peerID string) (path, transport string)
}

// CatchUpFunc starts the schema catch-up of a node to target.
type CatchUpFunc func(ctx context.Context, node string, target int) error

// HealthOptions bound a sweep.
type HealthOptions struct {
	// Concurrency bounds the pings in flight at once.
	Concurrency int
	// PingTimeout bounds one ping; a node that has not answered by then failed.
	PingTimeout time.Duration
}

// Health holds the activities of the health monitor workflow.
type Health struct {
	store   healthStore
	nodes   nodeCaller
	catchUp CatchUpFunc
	opts    HealthOptions
	log     *slog.Logger
}

// NewHealth returns the health activities; catchUp may be nil.
func NewHealth(st healthStore, nodes nodeCaller, catchUp CatchUpFunc, opts HealthOptions, log *slog.Logger) *Health {
	if opts.Concurrency < 1 {
		opts.Concurrency = health.DefaultConcurrency
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = health.DefaultPingTimeout
	}
	return &Health{store: st, nodes: nodes, catchUp: catchUp, opts: opts, log: log}
}

// HealthSweep pings every active node not in Skip, at most
// HealthOptions.Concurrency at once, and reports each one's answer.
func (a *Health) HealthSweep(ctx context.Context, p domain.SweepParams) (domain.SweepResult, error) {
	target, err := a.store.SchemaTarget(ctx)
	if err != nil {
		return domain.SweepResult{}, err
	}
	clusters, err := a.store.Clusters(ctx, true)
	if err != nil {
		return domain.SweepResult{}, err
	}
	res := domain.SweepResult{Target: target, Nodes: make([]domain.NodePing, 0, len(clusters))}
	var todo []domain.Cluster
	for _, c := range clusters {
		// A node the registry holds Unknown is pinged whatever its breaker
		// says: it was enrolled again, and its old breaker state is stale.
		if slices.Contains(p.Skip, c.Name) && c.Health != string(health.Unknown) {
			res.Skipped = append(res.Skipped, c.Name)
			continue
		}
		todo = append(todo, c)
	}
	out := make([]domain.NodePing, len(todo))
	var done atomic.Int64
	stop := heartbeat(ctx, func() any { return fmt.Sprintf("%d/%d pinged", done.Load(), len(todo)) })
	defer stop()
	sem := make(chan struct{}, a.opts.Concurrency)
	var wg sync.WaitGroup
	for i, c := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return domain.SweepResult{}, ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			obs, chLatency := a.ping(ctx, c)
			out[i] = domain.NodePing{Name: c.Name, Observation: obs, ClickHouseLatency: chLatency, Recorded: health.State(c.Health)}
			if pr, ok := a.nodes.(pathReporter); ok && obs.Answered {
				out[i].Path, out[i].Transport = pr.Route(c.PeerID)
			}
			done.Add(1)
		})
	}
	wg.Wait()
	res.Nodes = append(res.Nodes, out...)
	return res, nil
}

// ping sends one HealthPing and turns the answer into an observation, and
// the latency of the node's ClickHouse as the node measured it.
func (a *Health) ping(ctx context.Context, c domain.Cluster) (health.Observation, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.PingTimeout)
	defer cancel()
	var resp wire.HealthPingResponse
	start := time.Now()
	err := a.nodes.Call(ctx, c.PeerID, c.Addrs, p2p.HealthPing, &wire.HealthPingRequest{Nonce: uint64(start.UnixNano())}, &resp)
	rtt := time.Since(start)
	if err != nil {
		return health.Observation{Error: err.Error(), Latency: rtt}, 0
	}
	return health.Observation{
		Answered: true, Latency: rtt, ClickHouseOK: resp.GetClickhouseOk(), ClickHouseError: resp.GetClickhouseError(),
		SchemaVersion: int(resp.GetSchemaVersion()),
	}, resp.GetClickhouseLatency().AsDuration()
}

// RecordHealth writes a sweep's transitions (audited once each, however
// often the activity is retried) and pings to PostgreSQL, then starts the
// schema catch-up of every node that came back behind the fleet's target.
func (a *Health) RecordHealth(ctx context.Context, p domain.RecordHealthParams) (domain.RecordHealthResult, error) {
	trs := make([]store.HealthTransition, 0, len(p.Transitions))
	for _, t := range p.Transitions {
		trs = append(trs, store.HealthTransition{Cluster: t.Node, From: string(t.From), To: string(t.To), Reason: t.Reason,
			LatencyMS: t.LatencyMS, At: t.At})
	}
	pings := make([]store.PingResult, 0, len(p.Pings))
	version := map[string]int{}
	for _, s := range p.Pings {
		pings = append(pings, store.PingResult{Cluster: s.Node, Answered: s.Answered,
			Latency: time.Duration(s.LatencyMS * float64(time.Millisecond)), SchemaVersion: s.SchemaVersion, Path: s.Path, Transport: s.Transport})
		if s.Answered {
			version[s.Node] = s.SchemaVersion
		}
	}
	recorded, err := a.store.RecordHealth(ctx, trs, pings)
	if err != nil {
		return domain.RecordHealthResult{}, err
	}
	res := domain.RecordHealthResult{Recorded: len(recorded)}
	for _, t := range recorded {
		a.log.Info("node health changed", "node", t.Cluster, "from", t.From, "to", t.To, "reason", t.Reason, "latency_ms", t.LatencyMS)
	}
	// Transitions to a routable state, whether recorded now or by an
	// earlier attempt: the catch-up start is idempotent.
	for _, t := range p.Transitions {
		v, answered := version[t.Node]
		if !t.To.Routable() || !answered || v >= p.Target || a.catchUp == nil {
			continue
		}
		if err := a.catchUp(ctx, t.Node, p.Target); err != nil {
			a.log.Warn("start schema catch-up", "node", t.Node, "target", p.Target, "err", err)
			continue
		}
		res.CatchUps = append(res.CatchUps, t.Node)
	}
	return res, nil
}
