package activities_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"google.golang.org/protobuf/proto"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
)

// pingNodes answer HealthPing when up, refuse GetFlightEndpoint, and
// cannot open streams: the aggregate and the Flight read fail. They count
// the calls of each protocol.
type pingNodes struct {
	up bool

	mu    sync.Mutex
	calls map[string]int
}

func (n *pingNodes) Call(_ context.Context, _ string, _ []string, spec p2p.Spec, _, _ proto.Message) error {
	n.mu.Lock()
	n.calls[string(spec.ID)]++
	n.mu.Unlock()
	switch {
	case !n.up:
		return p2p.ErrUnreachable
	case spec.ID == p2p.HealthPing.ID:
		return nil
	}
	return errors.New("flight endpoint: the node's Flight server is down")
}

func benchmarkNode(t *testing.T, nodes *pingNodes) domain.BenchmarkNodeResult {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := activities.NewBenchmarks(nil, nodes, activities.BenchmarkOptions{}, slog.New(slog.DiscardHandler))
	env.RegisterActivity(a.BenchmarkNode)
	v, err := env.ExecuteActivity(a.BenchmarkNode, domain.BenchmarkNodeParams{Node: domain.NodeRef{Name: "lab-a", PeerID: "peer-a"}})
	require.NoError(t, err, "failed kinds are figures, not an error")
	var out domain.BenchmarkNodeResult
	require.NoError(t, v.Get(&out))
	return out
}

// TestBenchmarkNodeRecordsWhatFailed: every kind comes back, in order; a
// node that answers no ping is not asked anything else, and each kind that
// could not be measured says why.
func TestBenchmarkNodeRecordsWhatFailed(t *testing.T) {
	t.Parallel()
	kinds := func(figs []domain.BenchmarkFigure) []domain.BenchmarkKind {
		out := make([]domain.BenchmarkKind, 0, len(figs))
		for _, f := range figs {
			out = append(out, f.Kind)
		}
		return out
	}

	down := &pingNodes{calls: map[string]int{}}
	out := benchmarkNode(t, down)
	require.Equal(t, domain.BenchmarkKinds, kinds(out.Figures))
	for _, f := range out.Figures {
		require.False(t, f.OK, f.Kind)
		require.Zero(t, f.Value, f.Kind)
		require.False(t, f.MeasuredAt.IsZero(), f.Kind)
	}
	require.Equal(t, "3 of 3 pings failed: "+p2p.ErrUnreachable.Error(), out.Figures[0].Error)
	require.True(t, strings.HasPrefix(out.Figures[1].Error, "not measured: the node answered no ping: 3 of 3 pings failed"), out.Figures[1].Error)
	require.Equal(t, map[string]int{string(p2p.HealthPing.ID): 3}, down.calls, "nothing but pings asked of a node that answers none")

	up := &pingNodes{up: true, calls: map[string]int{}}
	out = benchmarkNode(t, up)
	require.Equal(t, domain.BenchmarkKinds, kinds(out.Figures))
	ping := out.Figures[0]
	require.True(t, ping.OK)
	require.Positive(t, ping.Value)
	require.Empty(t, ping.Error)
	require.Equal(t, "SQL over libp2p needs a libp2p host, which this worker lacks", out.Figures[1].Error)
	for _, f := range out.Figures[2:] {
		require.False(t, f.OK, f.Kind)
		require.Contains(t, f.Error, "the node's Flight server is down", f.Kind)
	}
	require.Equal(t, 1, up.calls[string(p2p.FlightEndpoint.ID)], "one Flight read for both Flight kinds")
}

// benchRows keeps what RecordBenchmarks writes.
type benchRows struct{ rows []domain.Benchmark }

func (s *benchRows) RecordBenchmarks(_ context.Context, rows []domain.Benchmark) error {
	s.rows = append(s.rows, rows...)
	return nil
}

// TestRecordBenchmarks: rows carry the calling run's IDs and their kind's
// unit; a failed row keeps no value and a reason within the cap; an
// unknown kind is refused for good.
func TestRecordBenchmarks(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	st := &benchRows{}
	a := activities.NewBenchmarks(st, &pingNodes{}, activities.BenchmarkOptions{}, slog.New(slog.DiscardHandler))
	env.RegisterActivity(a.RecordBenchmarks)
	v := 2.5
	long := strings.Repeat("é", domain.MaxBenchmarkError)
	res, err := env.ExecuteActivity(a.RecordBenchmarks, domain.RecordBenchmarksParams{Rows: []domain.Benchmark{
		{Node: "lab-a", Kind: domain.BenchmarkAggregate, Value: &v, OK: true, Error: "stale"},
		{Node: "lab-a", Kind: domain.BenchmarkFlightBytes, Value: &v, Error: long},
		{Node: "lab-b", Kind: domain.BenchmarkPing},
	}})
	require.NoError(t, err)
	var out domain.RecordBenchmarksResult
	require.NoError(t, res.Get(&out))
	require.Equal(t, 3, out.Recorded)
	require.Len(t, st.rows, 3)
	for _, r := range st.rows {
		require.Equal(t, "default-test-workflow-id", r.WorkflowID)
		require.Equal(t, "default-test-run-id", r.RunID)
	}
	require.Equal(t, "ms", st.rows[0].Unit)
	require.Empty(t, st.rows[0].Error)
	require.Equal(t, "MB/s", st.rows[1].Unit)
	require.Nil(t, st.rows[1].Value)
	require.Len(t, st.rows[1].Error, domain.MaxBenchmarkError, "é is two bytes: cut on a character boundary")
	require.Equal(t, "failed", st.rows[2].Error)

	_, err = env.ExecuteActivity(a.RecordBenchmarks, domain.RecordBenchmarksParams{Rows: []domain.Benchmark{{Node: "lab-a", Kind: "latency"}}})
	require.ErrorContains(t, err, `unknown benchmark kind "latency"`)
}
