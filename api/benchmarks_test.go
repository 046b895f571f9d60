package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/registry"
	"github.com/syndb/federation/internal/store"
)

// fakeBenchmarks answers every list with up to the page's limit of rows,
// IDs counting down from 500, and records the last filter.
type fakeBenchmarks struct {
	mu   sync.Mutex
	last store.BenchmarkFilter
}

func (f *fakeBenchmarks) Benchmarks(_ context.Context, q store.BenchmarkFilter) ([]domain.Benchmark, error) {
	f.mu.Lock()
	f.last = q
	f.mu.Unlock()
	var out []domain.Benchmark
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for id := int64(500); id > 497 && len(out) < q.Limit; id-- {
		v := 3.0
		out = append(out, domain.Benchmark{ID: id, Node: "lab-a", Kind: domain.BenchmarkAggregate, Value: &v, Unit: "ms", OK: true,
			MeasuredAt: at.Add(time.Duration(id) * time.Millisecond)})
	}
	return out, nil
}

func (f *fakeBenchmarks) filter() store.BenchmarkFilter {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// rankedLoader is a registry of two Healthy nodes: lab-b with a faster
// benchmark figure than lab-a, lab-c with none and the fastest ping.
type rankedLoader struct{}

func (rankedLoader) Clusters(context.Context, bool) ([]domain.Cluster, error) {
	return []domain.Cluster{
		{Name: "lab-a", Health: "healthy", Status: "active", BenchmarkMS: 9, HealthLatencyMS: 1},
		{Name: "lab-b", Health: "healthy", Status: "active", BenchmarkMS: 2.5, HealthLatencyMS: 4},
		{Name: "lab-c", Health: "healthy", Status: "active", HealthLatencyMS: 0.5},
	}, nil
}

func newBenchmarkTestServer(t *testing.T) (*httptest.Server, *fakeBenchmarks) {
	t.Helper()
	reg, err := registry.New(t.Context(), rankedLoader{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	b := &fakeBenchmarks{}
	s := New(config.API{PublicURL: "http://hub"}, Deps{Store: fakeStore{}, Registry: reg, Log: slog.New(slog.DiscardHandler), Benchmarks: b})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv, b
}

// TestBenchmarkListInput: filters reach the store as given; anything the
// route does not know is a 400 that names it.
func TestBenchmarkListInput(t *testing.T) {
	t.Parallel()
	srv, b := newBenchmarkTestServer(t)
	auth := "Bearer " + readerKey
	run := "0b7f1e1c-3c56-4f0e-8d1e-4d3f8f1c2a10"
	status, _, raw := do(t, srv, http.MethodGet, "/v1/federation/benchmarks?node=lab-a&kind=flight_rows&run="+run+"&limit=7", auth, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Equal(t, store.BenchmarkFilter{Node: "lab-a", Kind: domain.BenchmarkFlightRows, RunID: run, Limit: 7}, b.filter())
	status, _, raw = do(t, srv, http.MethodGet, "/v1/federation/benchmarks", auth, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Equal(t, store.BenchmarkFilter{Limit: defaultBenchmarkPage}, b.filter())

	for _, tc := range []struct{ query, message string }{
		{"kind=latency", `kind "latency": use one of ping, aggregate, flight_rows, flight_bytes`},
		{"kind=PING", `kind "PING"`},
		{"limit=0", "limit 0 is outside 1..1000"},
		{"limit=1001", "limit 1001 is outside 1..1000"},
		{"limit=ten", `limit="ten" is not a number`},
		{"node=Lab_A", `node "Lab_A" is not a node name`},
		{"run=42", `run "42" is not a run ID`},
		{"cursor=%21%21", "is not a cursor of GET /v1/federation/benchmarks"},
		{"cursor=" + url.QueryEscape("MTIzNDU"), "is not a cursor"},
		// A time PostgreSQL cannot hold, and one far in the future.
		{"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("-210866803200000001.1")), "is not a cursor"},
		{"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("9223372036854775807.1")), "is not a cursor"},
		{"node=" + strings.Repeat("a", 300), "node is 300 bytes, at most 256"},
	} {
		status, eb, _ := do(t, srv, http.MethodGet, "/v1/federation/benchmarks?"+tc.query, auth, "")
		require.Equal(t, http.StatusBadRequest, status, tc.query)
		require.Contains(t, eb.Error.Message, tc.message, tc.query)
	}
}

// TestBenchmarkListPages: a full page links to the next, whose cursor is
// its last row's time and ID, and which keeps the filters.
func TestBenchmarkListPages(t *testing.T) {
	t.Parallel()
	srv, b := newBenchmarkTestServer(t)
	auth := "Bearer " + readerKey
	status, _, raw := do(t, srv, http.MethodGet, "/v1/federation/benchmarks?kind=aggregate&limit=2", auth, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var page BenchmarkPage
	require.NoError(t, json.Unmarshal(raw, &page))
	require.Len(t, page.Benchmarks, 2)
	require.NotEmpty(t, page.Next)
	next, err := url.Parse(page.Next)
	require.NoError(t, err)
	require.Equal(t, "/v1/federation/benchmarks", next.Path)
	require.Equal(t, "aggregate", next.Query().Get("kind"))
	status, _, raw = do(t, srv, http.MethodGet, next.RequestURI(), auth, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	last := page.Benchmarks[1]
	require.Equal(t, &store.BenchmarkCursor{MeasuredAt: last.MeasuredAt, ID: 499}, b.filter().After)

	// A short page is the last.
	status, _, raw = do(t, srv, http.MethodGet, "/v1/federation/benchmarks?limit=10", auth, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	page = BenchmarkPage{}
	require.NoError(t, json.Unmarshal(raw, &page))
	require.Len(t, page.Benchmarks, 3)
	require.Empty(t, page.Next)
}

func TestBenchmarkStartAndStatusInput(t *testing.T) {
	t.Parallel()
	srv, _ := newBenchmarkTestServer(t)
	for _, body := range []string{`{"concurrency": -1}`, `{"concurrency": 1001}`, `{"nodes": ["lab-a"]}`} {
		status, _, raw := do(t, srv, http.MethodPost, "/v1/federation/benchmarks", "Bearer "+operatorKey, body)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", body, raw)
	}
	status, eb, _ := do(t, srv, http.MethodGet, "/v1/federation/benchmarks/schema-sync-v3", "Bearer "+readerKey, "")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, eb.Error.Message, "IDs look like node-benchmark")
}

// TestRoutingPlanShowsFigures: the plan lists the faster benchmark figure
// first within a state, whatever the ping says, a node without a figure
// after, and what each was ranked by.
func TestRoutingPlanShowsFigures(t *testing.T) {
	t.Parallel()
	srv, _ := newBenchmarkTestServer(t)
	status, _, raw := do(t, srv, http.MethodGet, "/v1/federation/routing", "Bearer "+readerKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var plan RoutingPlan
	require.NoError(t, json.Unmarshal(raw, &plan))
	require.Equal(t, []string{"lab-b", "lab-a", "lab-c"}, plan.Included)
	require.Equal(t, []RoutedNode{
		{Name: "lab-b", Health: "healthy", BenchmarkMS: 2.5, LatencyMS: 4},
		{Name: "lab-a", Health: "healthy", BenchmarkMS: 9, LatencyMS: 1},
		{Name: "lab-c", Health: "healthy", LatencyMS: 0.5},
	}, plan.Nodes)
}
