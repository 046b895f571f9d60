package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/registry"
	"github.com/syndb/federation/internal/store"
)

const (
	goodKey   = "sdb_good"
	readerKey = "sdb_reader"
)

// fakeStore is a small in-memory stand-in for PostgreSQL: one valid key.
type fakeStore struct{}

func (fakeStore) Authenticate(_ context.Context, key string) (store.Principal, error) {
	switch key {
	case goodKey:
		return store.Principal{KeyName: "test", Account: "default", Role: "admin"}, nil
	case readerKey:
		return store.Principal{KeyName: "reader", Account: "default", Role: "reader"}, nil
	}
	return store.Principal{}, store.ErrUnauthorized
}

func (fakeStore) Clusters(context.Context, bool) ([]store.Cluster, error) {
	return []store.Cluster{{Name: "lab-a", PeerID: "12D3KooW", Health: "degraded", HealthReason: "slow: 2s > 1s", Status: "active"},
		{Name: "lab-old", Health: "unknown", Status: "revoked"}}, nil
}

func (fakeStore) CreateCluster(_ context.Context, name string, ttl time.Duration, _ string) (store.Enrollment, error) {
	if name == "lab-a" {
		return store.Enrollment{}, store.ErrExists
	}
	return store.Enrollment{Name: name, Token: "sdbenroll_x", ExpiresAt: time.Now().Add(ttl)}, nil
}

func (fakeStore) RevokeCluster(_ context.Context, name string) (store.Cluster, error) {
	if name != "lab-a" {
		return store.Cluster{}, store.ErrNotFound
	}
	return store.Cluster{Name: name, Status: "revoked"}, nil
}

func (fakeStore) Ping(context.Context) error { return errors.New("down for the test") }

func (fakeStore) SchemaTarget(context.Context) (int, error) { return 3, nil }

func (fakeStore) HealthHistory(_ context.Context, cluster string, limit int, before int64) ([]store.HealthTransition, error) {
	if cluster != "lab-a" {
		return nil, store.ErrNotFound
	}
	var out []store.HealthTransition
	for id := int64(10); id > 0 && len(out) < limit; id-- {
		if before == 0 || id < before {
			out = append(out, store.HealthTransition{ID: id, Cluster: cluster, From: "unknown", To: "healthy"})
		}
	}
	return out, nil
}

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	reg, err := registry.New(t.Context(), fakeStore{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	s := New(config.API{PublicURL: "http://hub"}, Deps{Store: fakeStore{}, Registry: reg, Log: slog.New(slog.DiscardHandler), SchemaHead: 3})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, srv *httptest.Server, method, path, auth, body string) (int, ErrorBody, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "application/json", strings.Split(resp.Header.Get("Content-Type"), ";")[0], "every answer is JSON: %s", raw)
	var eb ErrorBody
	if resp.StatusCode >= 400 {
		require.NoError(t, json.Unmarshal(raw, &eb), "error body must be JSON: %s", raw)
		require.NotEmpty(t, eb.Error.Code)
		require.NotEmpty(t, eb.Error.Message)
	}
	return resp.StatusCode, eb, raw
}

func TestAuth(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	cases := []struct {
		name, auth string
		status     int
		code       string
	}{
		{"missing", "", 401, codeUnauthorized},
		{"wrong scheme", "Basic abc", 401, codeUnauthorized},
		{"empty bearer", "Bearer ", 401, codeUnauthorized},
		{"unknown key", "Bearer sdb_nope", 401, codeUnauthorized},
		{"good key", "Bearer " + goodKey, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, eb, _ := do(t, srv, http.MethodGet, "/v1/federation/clusters", tc.auth, "")
			require.Equal(t, tc.status, status)
			require.Equal(t, tc.code, eb.Error.Code)
		})
	}
}

func TestEveryV1RouteNeedsAKey(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	routes := []struct{ method, path string }{{http.MethodGet, "/v1/does-not-exist"}}
	api := New(config.API{}, Deps{Store: fakeStore{}, Log: slog.New(slog.DiscardHandler)})
	for _, r := range api.e.Routes() {
		if strings.HasPrefix(r.Path, "/v1/") {
			path := regexp.MustCompile(`:[a-z]+`).ReplaceAllString(r.Path, "x")
			routes = append(routes, struct{ method, path string }{r.Method, path})
		}
	}
	require.Greater(t, len(routes), 5)
	for _, r := range routes {
		status, eb, _ := do(t, srv, r.method, r.path, "", "")
		require.Equal(t, http.StatusUnauthorized, status, r.path)
		require.Equal(t, codeUnauthorized, eb.Error.Code)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	auth := "Bearer " + goodKey
	cases := []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"bad json", http.MethodPost, "/v1/federation/schema/sync", `{"target_version":`, 400, "invalid JSON"},
		{"not an object", http.MethodPost, "/v1/federation/schema/sync", `[1,2]`, 400, "invalid JSON"},
		{"unknown field", http.MethodPost, "/v1/federation/schema/sync", `{"target":3}`, 400, "unknown field"},
		{"two values", http.MethodPost, "/v1/federation/schema/sync", `{} {}`, 400, "more than one"},
		{"target too high", http.MethodPost, "/v1/federation/schema/sync", `{"target_version":99}`, 400, "outside 1..3"},
		{"target negative", http.MethodPost, "/v1/federation/schema/sync", `{"target_version":-1}`, 400, "outside 1..3"},
		{"bad workflow id", http.MethodGet, "/v1/federation/schema/sync/DROP%20TABLE", "", 404, "no schema sync"},
		{"unknown route", http.MethodGet, "/v1/nope", "", 404, "not found"},
		{"cluster bad name", http.MethodPost, "/v1/federation/clusters", `{"name":"Lab A"}`, 400, "must be 1-63"},
		{"cluster no name", http.MethodPost, "/v1/federation/clusters", `{}`, 400, "must be 1-63"},
		{"cluster bad ttl", http.MethodPost, "/v1/federation/clusters", `{"name":"lab-c","ttl_seconds":-5}`, 400, "ttl_seconds"},
		{"cluster exists", http.MethodPost, "/v1/federation/clusters", `{"name":"lab-a"}`, 409, "already enrolled"},
		{"revoke unknown", http.MethodDelete, "/v1/federation/clusters/lab-z", "", 404, "no cluster"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, eb, raw := do(t, srv, tc.method, tc.path, auth, tc.body)
			require.Equal(t, tc.status, status, string(raw))
			require.Contains(t, eb.Error.Message, tc.contains)
			require.NotContains(t, string(raw), "goroutine", "no stack traces")
		})
	}
}

func TestProbes(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	status, _, _ := do(t, srv, http.MethodGet, "/healthz", "", "")
	require.Equal(t, http.StatusOK, status)
}

func TestStatusName(t *testing.T) {
	t.Parallel()
	require.Equal(t, "continued_as_new", statusName(6))
	require.Equal(t, "running", statusName(1))
	require.Equal(t, "completed", statusName(2))
}

func TestClusterAdmin(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	status, _, raw := do(t, srv, http.MethodPost, "/v1/federation/clusters", "Bearer "+goodKey, `{"name":"lab-c","ttl_seconds":60}`)
	require.Equal(t, http.StatusCreated, status, string(raw))
	var e store.Enrollment
	require.NoError(t, json.Unmarshal(raw, &e))
	require.Equal(t, "lab-c", e.Name)
	require.NotEmpty(t, e.Token)

	status, eb, _ := do(t, srv, http.MethodPost, "/v1/federation/clusters", "Bearer "+readerKey, `{"name":"lab-d"}`)
	require.Equal(t, http.StatusForbidden, status)
	require.Equal(t, codeForbidden, eb.Error.Code)
	status, _, _ = do(t, srv, http.MethodDelete, "/v1/federation/clusters/lab-a", "Bearer "+readerKey, "")
	require.Equal(t, http.StatusForbidden, status)
	status, _, raw = do(t, srv, http.MethodDelete, "/v1/federation/clusters/lab-a", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
}

func TestHealthHistoryPages(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	status, _, raw := do(t, srv, http.MethodGet, "/v1/federation/clusters/lab-a/health/history?limit=4", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var page HealthHistory
	require.NoError(t, json.Unmarshal(raw, &page))
	require.Len(t, page.Transitions, 4)
	require.Equal(t, "http://hub/v1/federation/clusters/lab-a/health/history?limit=4&before=7", page.Next)
	status, _, raw = do(t, srv, http.MethodGet, "/v1/federation/clusters/lab-a/health/history?limit=4&before=3", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusOK, status)
	var last HealthHistory
	require.NoError(t, json.Unmarshal(raw, &last))
	page = last
	require.Len(t, page.Transitions, 2)
	require.Empty(t, page.Next, "the last page has no next")

	for _, bad := range []string{"?limit=0", "?limit=5000", "?limit=x", "?before=y"} {
		status, eb, _ := do(t, srv, http.MethodGet, "/v1/federation/clusters/lab-a/health/history"+bad, "Bearer "+goodKey, "")
		require.Equal(t, http.StatusBadRequest, status, bad)
		require.NotEmpty(t, eb.Error.Message)
	}
	status, _, _ = do(t, srv, http.MethodGet, "/v1/federation/clusters/nope/health/history", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusNotFound, status)
}

func TestHealthReportFromSnapshot(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	status, _, raw := do(t, srv, http.MethodGet, "/v1/federation/health", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var rep HealthReport
	require.NoError(t, json.Unmarshal(raw, &rep))
	require.Len(t, rep.Nodes, 1, "revoked clusters are left out")
	require.Equal(t, "lab-a", rep.Nodes[0].Name)
	require.Equal(t, "degraded", rep.Nodes[0].State)
	require.Equal(t, "slow: 2s > 1s", rep.Nodes[0].Reason)
}

func TestSyncConcurrencyIsChecked(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	for _, body := range []string{`{"concurrency": -1}`, `{"concurrency": 100000}`, `{"target_version": 9}`} {
		status, eb, _ := do(t, srv, http.MethodPost, "/v1/federation/schema/sync", "Bearer "+goodKey, body)
		require.Equal(t, http.StatusBadRequest, status, body)
		require.Equal(t, "bad_request", eb.Error.Code, body)
	}
}

func TestRoutingPlan(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	status, _, raw := do(t, srv, http.MethodGet, "/v1/federation/routing?min_schema=0", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var plan RoutingPlan
	require.NoError(t, json.Unmarshal(raw, &plan))
	require.Equal(t, []string{"lab-a"}, plan.Included, "a Degraded node is routed to")
	require.Len(t, plan.Excluded, 1)
	require.Equal(t, "lab-old", plan.Excluded[0].Name)
	status, _, _ = do(t, srv, http.MethodGet, "/v1/federation/routing?min_schema=3&max_schema=2", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusBadRequest, status)
}
