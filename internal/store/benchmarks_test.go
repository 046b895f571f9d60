package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

func figure(run, node string, kind domain.BenchmarkKind, v float64, at time.Time) domain.Benchmark {
	return domain.Benchmark{WorkflowID: "node-benchmark", RunID: run, Node: node, Kind: kind, Value: &v, OK: true, Path: "direct",
		MeasuredAt: at}
}

func failed(run, node string, kind domain.BenchmarkKind, reason string, at time.Time) domain.Benchmark {
	return domain.Benchmark{WorkflowID: "node-benchmark", RunID: run, Node: node, Kind: kind, Error: reason, MeasuredAt: at}
}

// TestBenchmarkRows: a run's rows are written once however often the write
// is retried, listed newest first with filters and pages, and announced on
// the registry's channel. The oracle is the table read straight from
// PostgreSQL.
func TestBenchmarkRows(t *testing.T) {
	t.Parallel()
	st, conn := catalogTestStore(t, "lab-a", "lab-b")
	ctx := t.Context()
	_, err := conn.Exec(ctx, "LISTEN "+store.RegistryChannel)
	require.NoError(t, err)
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	var rows []domain.Benchmark
	for i, node := range []string{"lab-a", "lab-b"} {
		at := t0.Add(time.Duration(i) * time.Second)
		rows = append(rows, figure("run-1", node, domain.BenchmarkPing, 0.4, at), figure("run-1", node, domain.BenchmarkAggregate, 3, at),
			failed("run-1", node, domain.BenchmarkFlightRows, "no ticket", at), failed("run-1", node, domain.BenchmarkFlightBytes, "no ticket", at))
	}
	require.NoError(t, st.RecordBenchmarks(ctx, rows))
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(wait)
	require.NoError(t, err, "an insert is announced to the registry")
	require.Equal(t, store.RegistryChannel, n.Channel)
	require.NoError(t, st.RecordBenchmarks(ctx, rows[2:]), "a retried write")
	var count int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM benchmarks WHERE run_id = 'run-1'`).Scan(&count))
	require.Equal(t, 8, count, "one row per node and kind")
	var unit string
	var value *float64
	require.NoError(t, conn.QueryRow(ctx, `SELECT unit, value FROM benchmarks WHERE node = 'lab-b' AND kind = 'flight_rows'`).Scan(&unit, &value))
	require.Equal(t, "rows/s", unit)
	require.Nil(t, value, "a failed row has no value")

	// Newest first: lab-b's rows (measured a second later), then lab-a's.
	all, err := st.Benchmarks(ctx, store.BenchmarkFilter{Limit: 100})
	require.NoError(t, err)
	require.Len(t, all, 8)
	for i, b := range all {
		want := "lab-b"
		if i >= 4 {
			want = "lab-a"
		}
		require.Equal(t, want, b.Node, i)
	}
	agg, err := st.Benchmarks(ctx, store.BenchmarkFilter{Node: "lab-a", Kind: domain.BenchmarkAggregate, Limit: 10})
	require.NoError(t, err)
	require.Len(t, agg, 1)
	require.Equal(t, domain.Benchmark{ID: agg[0].ID, WorkflowID: "node-benchmark", RunID: "run-1", Node: "lab-a", Kind: domain.BenchmarkAggregate,
		Value: agg[0].Value, Unit: "ms", Path: "direct", OK: true, MeasuredAt: t0}, agg[0])
	require.InDelta(t, 3, *agg[0].Value, 0)

	// Pages of three follow one another without a gap or a repeat.
	var paged []int64
	f := store.BenchmarkFilter{Limit: 3}
	for {
		page, err := st.Benchmarks(ctx, f)
		require.NoError(t, err)
		for _, b := range page {
			paged = append(paged, b.ID)
		}
		if len(page) < f.Limit {
			break
		}
		last := page[len(page)-1]
		f.After = &store.BenchmarkCursor{MeasuredAt: last.MeasuredAt, ID: last.ID}
	}
	want := make([]int64, 0, len(all))
	for _, b := range all {
		want = append(want, b.ID)
	}
	require.Equal(t, want, paged)
	none, err := st.Benchmarks(ctx, store.BenchmarkFilter{RunID: "run-2", Limit: 10})
	require.NoError(t, err)
	require.Empty(t, none)
}

// TestClusterBenchmarkFigure: a node's figure is the median of its latest
// five successful aggregates within the day; failed rows, other kinds and
// older rows do not count. The expected medians are worked out by hand.
func TestClusterBenchmarkFigure(t *testing.T) {
	t.Parallel()
	st, _ := catalogTestStore(t, "lab-a", "lab-b", "lab-c")
	ctx := t.Context()
	now := time.Now().UTC()
	var rows []domain.Benchmark
	// lab-a: six aggregates in the last hour, newest last: the latest five
	// are 9, 2, 7, 4, 5, whose median is 5 (the oldest, 100, is left out).
	for i, v := range []float64{100, 9, 2, 7, 4, 5} {
		rows = append(rows, figure("a-"+string(rune('0'+i)), "lab-a", domain.BenchmarkAggregate, v, now.Add(time.Duration(i-60)*time.Minute)))
	}
	// A newer failure and a faster ping change nothing.
	rows = append(rows, failed("a-late", "lab-a", domain.BenchmarkAggregate, "node stopped", now),
		figure("a-late", "lab-a", domain.BenchmarkPing, 0.1, now))
	// lab-b: two recent aggregates (median 1.5) and one from two days ago.
	rows = append(rows, figure("b-0", "lab-b", domain.BenchmarkAggregate, 1, now.Add(-time.Minute)),
		figure("b-1", "lab-b", domain.BenchmarkAggregate, 2, now.Add(-2*time.Minute)),
		figure("b-old", "lab-b", domain.BenchmarkAggregate, 50, now.Add(-48*time.Hour)))
	// lab-c: only an aggregate older than the window.
	rows = append(rows, figure("c-old", "lab-c", domain.BenchmarkAggregate, 1, now.Add(-25*time.Hour)))
	require.NoError(t, st.RecordBenchmarks(ctx, rows))

	cs, err := st.Clusters(ctx, false)
	require.NoError(t, err)
	got := map[string]float64{}
	for _, c := range cs {
		got[c.Name] = c.BenchmarkMS
	}
	require.Equal(t, map[string]float64{"lab-a": 5, "lab-b": 1.5, "lab-c": 0}, got)
	one, err := st.Cluster(ctx, "lab-b")
	require.NoError(t, err)
	require.InDelta(t, 1.5, one.BenchmarkMS, 0)
}

// TestBenchmarkRowsOfGoneNodesAndOldRows: a row of a node that is not in
// the registry is dropped without failing the others, and a write drops
// rows older than BenchmarkRetention.
func TestBenchmarkRowsOfGoneNodesAndOldRows(t *testing.T) {
	t.Parallel()
	st, conn := catalogTestStore(t, "lab-a")
	ctx := t.Context()
	now := time.Now().UTC()
	old := now.Add(-store.BenchmarkRetention - time.Hour)
	require.NoError(t, st.RecordBenchmarks(ctx, []domain.Benchmark{figure("run-old", "lab-a", domain.BenchmarkPing, 1, old)}))
	require.NoError(t, st.RecordBenchmarks(ctx, []domain.Benchmark{
		figure("run-new", "lab-a", domain.BenchmarkPing, 1, now), figure("run-new", "gone", domain.BenchmarkPing, 1, now)}))
	var runs []string
	rows, err := conn.Query(ctx, `SELECT run_id || '/' || node FROM benchmarks ORDER BY run_id`)
	require.NoError(t, err)
	for rows.Next() {
		var r string
		require.NoError(t, rows.Scan(&r))
		runs = append(runs, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"run-new/lab-a"}, runs)
}
