package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/syndb/federation/internal/domain"
)

// DefaultBenchmarkConcurrency bounds a benchmark's fan-out when the params
// leave it 0: a few nodes at once, so that measuring one does not slow the
// hub's side of another much.
const DefaultBenchmarkConcurrency = 4

// benchmarkRecordBatch is how many nodes' rows one RecordBenchmarks call
// writes, so each payload stays small whatever the fleet's size.
const benchmarkRecordBatch = 100

// Node benchmark statuses (besides NodeQueued and NodeFailed: some kind
// could not be measured).
const (
	NodeMeasuring = "measuring"
	NodeMeasured  = "measured" // every kind measured
)

// NodeBenchmarkParams is the input of the node benchmark workflow.
type NodeBenchmarkParams struct {
	// Concurrency bounds how many nodes are measured at once.
	Concurrency int `json:"concurrency,omitempty"`
}

// BenchmarkedNode is one node's part of a benchmark run.
type BenchmarkedNode struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// Path is the path of the hub's connection to the node when it was
	// measured: direct, hole-punched or relayed.
	Path string `json:"path,omitempty"`
	// Values holds each measured kind's value, in its unit.
	Values map[domain.BenchmarkKind]float64 `json:"values,omitempty"`
	// Errors says why each kind that failed could not be measured.
	Errors     map[domain.BenchmarkKind]string `json:"errors,omitempty"`
	DurationMS int64                           `json:"duration_ms"`
}

// NodeBenchmarkResult is the output (and, while running, the progress) of
// a benchmark run.
type NodeBenchmarkResult struct {
	Nodes []BenchmarkedNode `json:"nodes"`
	// Measured counts the nodes every kind was measured on, Failed the
	// others.
	Measured int `json:"measured"`
	Failed   int `json:"failed"`
	// Recorded counts the rows written to PostgreSQL: one per node and kind.
	Recorded int `json:"recorded"`
}

// NodeBenchmark measures every active node, each as its own activity
// (bounded fan-out, no retries: a benchmark that failed is a figure, and a
// retry would measure another moment), whatever its health state: a node
// that cannot be reached is recorded as failed, with the reason, not
// skipped. It then writes one row per node and kind to PostgreSQL, which
// announces them to the registry snapshots that routing reads.
func NodeBenchmark(ctx workflow.Context, p NodeBenchmarkParams) (NodeBenchmarkResult, error) {
	log := workflow.GetLogger(ctx)
	res := NodeBenchmarkResult{Nodes: []BenchmarkedNode{}}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (NodeBenchmarkResult, error) { return res, nil }); err != nil {
		return res, fmt.Errorf("register progress query: %w", err)
	}
	var nodes []domain.NodeRef
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, listOptions()), domain.ListSyncTargetsName).Get(ctx, &nodes); err != nil {
		upsertOutcome(ctx, OutcomeFailed)
		return res, fmt.Errorf("list nodes: %w", err)
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, NodeCountKey.ValueSet(int64(len(nodes)))); err != nil {
		return res, fmt.Errorf("set search attributes: %w", err)
	}
	for _, n := range nodes {
		res.Nodes = append(res.Nodes, BenchmarkedNode{Name: n.Name, Status: NodeQueued})
	}
	limit := p.Concurrency
	if limit <= 0 {
		limit = DefaultBenchmarkConcurrency
	}
	log.Info("benchmarking nodes", "nodes", len(nodes), "concurrency", limit)
	figures := make([][]domain.BenchmarkFigure, len(nodes))
	started := make([]time.Time, len(nodes))
	fanOut(ctx, len(nodes), limit, func(i int) workflow.Future {
		started[i] = workflow.Now(ctx)
		res.Nodes[i].Status = NodeMeasuring
		nodeCtx := workflow.WithActivityOptions(ctx, benchmarkOptions("benchmark-"+nodes[i].Name))
		return workflow.ExecuteActivity(nodeCtx, domain.BenchmarkNodeName, domain.BenchmarkNodeParams{Node: nodes[i]})
	}, func(i int, f workflow.Future) {
		var out domain.BenchmarkNodeResult
		if err := f.Get(ctx, &out); err != nil {
			out.Figures = failedFigures(rootMessage(err), workflow.Now(ctx))
		}
		figures[i] = out.Figures
		res.Nodes[i] = summarize(nodes[i].Name, out.Figures, workflow.Now(ctx).Sub(started[i]))
	})
	for _, n := range res.Nodes {
		if n.Status == NodeMeasured {
			res.Measured++
		} else {
			res.Failed++
		}
	}
	recorded, err := recordBenchmarks(ctx, nodes, figures)
	res.Recorded = recorded
	if err != nil {
		upsertOutcome(ctx, OutcomeFailed)
		return res, err
	}
	outcome := OutcomeComplete
	if res.Failed > 0 {
		outcome = OutcomePartial
	}
	upsertOutcome(ctx, outcome)
	log.Info("benchmark finished", "measured", res.Measured, "failed", res.Failed, "recorded", res.Recorded)
	return res, nil
}

// benchmarkOptions are the activity options of one node's benchmark:
// activityID names the node's activity so the UI lists each node on its
// own; one attempt, within a few minutes (each kind is bounded far below
// that), heartbeating.
func benchmarkOptions(activityID string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		ActivityID:          activityID,
		StartToCloseTimeout: 3 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	}
}

// failedFigures records every kind failed at at, for reason: the figures of
// a node whose activity failed.
func failedFigures(reason string, at time.Time) []domain.BenchmarkFigure {
	out := make([]domain.BenchmarkFigure, 0, len(domain.BenchmarkKinds))
	for _, k := range domain.BenchmarkKinds {
		out = append(out, domain.FailedFigure(k, reason, at))
	}
	return out
}

// summarize is a node's part of the result from its figures.
func summarize(name string, figs []domain.BenchmarkFigure, took time.Duration) BenchmarkedNode {
	n := BenchmarkedNode{Name: name, Status: NodeMeasured, DurationMS: took.Milliseconds()}
	for _, f := range figs {
		if f.Path != "" {
			n.Path = f.Path
		}
		if f.OK {
			if n.Values == nil {
				n.Values = map[domain.BenchmarkKind]float64{}
			}
			n.Values[f.Kind] = f.Value
			continue
		}
		if n.Errors == nil {
			n.Errors = map[domain.BenchmarkKind]string{}
		}
		n.Errors[f.Kind] = f.Error
		n.Status = NodeFailed
	}
	return n
}

// recordBenchmarks writes the run's rows, one per node and kind, in
// batches of benchmarkRecordBatch nodes, and returns how many it wrote.
func recordBenchmarks(ctx workflow.Context, nodes []domain.NodeRef, figures [][]domain.BenchmarkFigure) (int, error) {
	recorded := 0
	actx := workflow.WithActivityOptions(ctx, listOptions())
	for from := 0; from < len(nodes); from += benchmarkRecordBatch {
		var rows []domain.Benchmark
		for i := from; i < min(from+benchmarkRecordBatch, len(nodes)); i++ {
			for _, f := range figures[i] {
				row := domain.Benchmark{Node: nodes[i].Name, Kind: f.Kind, Path: f.Path, OK: f.OK, Error: f.Error, MeasuredAt: f.MeasuredAt}
				if f.OK {
					v := f.Value
					row.Value = &v
				}
				rows = append(rows, row)
			}
		}
		var out domain.RecordBenchmarksResult
		if err := workflow.ExecuteActivity(actx, domain.RecordBenchmarksName, domain.RecordBenchmarksParams{Rows: rows}).Get(ctx, &out); err != nil {
			return recorded, fmt.Errorf("record benchmarks: %w", err)
		}
		recorded += out.Recorded
	}
	return recorded, nil
}
