package workflows

import (
	"context"
	"time"

	"go.temporal.io/sdk/client"
)

// StartNodeBenchmark starts a benchmark of the whole fleet, or joins the one
// already going (the workflow ID is fixed: BenchmarkID). A finished one may
// run again: each run records its own rows.
func StartNodeBenchmark(ctx context.Context, c client.Client, p NodeBenchmarkParams) (Started, error) {
	return startOrJoinRun(ctx, c, BenchmarkID, NodeBenchmarkName, p)
}

// EnsureBenchmarkSchedule creates the Temporal Schedule that benchmarks the
// whole fleet every interval (ID BenchmarkScheduleID), or, when it exists,
// brings its interval to this one. Runs that would overlap a running one
// are skipped.
func EnsureBenchmarkSchedule(ctx context.Context, c client.Client, every time.Duration) error {
	return ensureSchedule(ctx, c, schedule{
		id:         BenchmarkScheduleID,
		note:       "benchmark every node (ping, aggregate, Flight) into the hub's PostgreSQL",
		workflowID: BenchmarkScheduledID,
		workflow:   NodeBenchmarkName,
		params:     NodeBenchmarkParams{},
	}, every)
}
