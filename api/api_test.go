package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/registry"
	"github.com/syndb/federation/internal/store"
)

const (
	goodKey     = "sdb_good"
	operatorKey = "sdb_operator"
	readerKey   = "sdb_reader"
	expiredKey  = "sdb_expired"
)

// fakeStore is a small in-memory stand-in for PostgreSQL: a key of each role.
type fakeStore struct{}

func (fakeStore) Authenticate(_ context.Context, key string) (store.Principal, error) {
	switch key {
	case goodKey:
		return store.Principal{KeyID: 1, KeyName: "test", Account: "default", Role: store.RoleAdmin}, nil
	case operatorKey:
		return store.Principal{KeyID: 7, KeyName: "operator", Account: "default", Role: store.RoleOperator}, nil
	case readerKey:
		return store.Principal{KeyID: 8, KeyName: "reader", Account: "default", Role: store.RoleReader}, nil
	case expiredKey:
		return store.Principal{}, domain.ErrKeyExpired
	}
	return store.Principal{}, domain.ErrUnauthorized
}

func (fakeStore) Clusters(context.Context, bool) ([]domain.Cluster, error) {
	return []domain.Cluster{{Name: "lab-a", PeerID: "12D3KooW", Health: "degraded", HealthReason: "slow: 2s > 1s", Status: "active"},
		{Name: "lab-old", Health: "unknown", Status: "revoked"}}, nil
}

func (fakeStore) CreateCluster(_ context.Context, name string, ttl time.Duration, _ string) (store.Enrollment, error) {
	if name == "lab-a" {
		return store.Enrollment{}, domain.ErrExists
	}
	return store.Enrollment{Name: name, Token: "sdbenroll_x", ExpiresAt: time.Now().Add(ttl)}, nil
}

func (fakeStore) RevokeCluster(_ context.Context, name string) (domain.Cluster, error) {
	if name != "lab-a" {
		return domain.Cluster{}, domain.ErrNotFound
	}
	return domain.Cluster{Name: name, Status: "revoked"}, nil
}

func (fakeStore) Ping(context.Context) error { return errors.New("down for the test") }

func (fakeStore) NewAPIKey(_ context.Context, spec store.KeySpec) (string, store.APIKey, error) {
	rec := store.APIKey{ID: 42, Name: spec.Name, Account: spec.Account, Role: spec.Role, Prefix: "sdb_new", CreatedBy: spec.CreatedBy}
	if spec.TTL > 0 {
		exp := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(spec.TTL)
		rec.ExpiresAt = &exp
	}
	return "sdb_new", rec, nil
}

// RotateAPIKey rotates key 1; key 2 is revoked.
func (fakeStore) RotateAPIKey(_ context.Context, id int64, grace time.Duration, by string) (string, store.APIKey, store.APIKey, error) {
	switch id {
	case 1:
		exp := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(grace)
		return "sdb_rotated", store.APIKey{ID: 43, Name: "test", Role: store.RoleAdmin, CreatedBy: by, State: store.KeyActive},
			store.APIKey{ID: 1, Name: "test", Role: store.RoleAdmin, ExpiresAt: &exp, State: store.KeyGrace}, nil
	case 2:
		return "", store.APIKey{}, store.APIKey{}, fmt.Errorf("%w: key 2 is revoked", store.ErrNotRotatable)
	}
	return "", store.APIKey{}, store.APIKey{}, domain.ErrNotFound
}

func (fakeStore) APIKeys(context.Context) ([]store.APIKey, error) {
	return []store.APIKey{{ID: 1, Name: "test", Account: "default", Role: store.RoleAdmin}}, nil
}

func (fakeStore) RevokeAPIKey(_ context.Context, id int64) (store.APIKey, error) {
	if id != 1 {
		return store.APIKey{}, domain.ErrNotFound
	}
	return store.APIKey{ID: 1, Name: "test", Account: "default", Role: store.RoleAdmin}, nil
}

func (fakeStore) SchemaTarget(context.Context) (int, error) { return 3, nil }

func (fakeStore) HealthHistory(_ context.Context, cluster string, limit int, before int64) ([]store.HealthTransition, error) {
	if cluster != "lab-a" {
		return nil, domain.ErrNotFound
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
		{"cluster ttl overflows a duration", http.MethodPost, "/v1/federation/clusters", `{"name":"lab-c","ttl_seconds":18446744075}`, 400, "outside 1..2592000"},
		{"cluster ttl past int64", http.MethodPost, "/v1/federation/clusters", `{"name":"lab-c","ttl_seconds":18446744073709551616}`, 400, "invalid JSON"},
		{"cluster ttl a day too long", http.MethodPost, "/v1/federation/clusters", `{"name":"lab-c","ttl_seconds":2592001}`, 400, "outside 1..2592000"},
		{"NUL in a JSON string", http.MethodPost, "/v1/federation/clusters", `{"name":"lab\u0000c"}`, 400, "NUL"},
		{"JSON not UTF-8", http.MethodPost, "/v1/federation/clusters", "{\"name\":\"lab-\xffc\"}", 400, "UTF-8"},
		{"revoke NUL name", http.MethodDelete, "/v1/federation/clusters/lab%00a", "", 400, "NUL"},
		{"revoke name not UTF-8", http.MethodDelete, "/v1/federation/clusters/lab%ff", "", 400, "UTF-8"},
		{"history NUL name", http.MethodGet, "/v1/federation/clusters/%00/health/history", "", 400, "NUL"},
		{"history name not UTF-8", http.MethodGet, "/v1/federation/clusters/%ff/health/history", "", 400, "UTF-8"},
		{"history name not UTF-8, upper case", http.MethodGet, "/v1/federation/clusters/%FF/health/history", "", 400, "UTF-8"},
		{"history before negative", http.MethodGet, "/v1/federation/clusters/lab-a/health/history?before=-1", "", 400, "outside"},
		{"routing nodes NUL", http.MethodGet, "/v1/federation/routing?nodes=lab-a,%00", "", 400, "NUL"},
		{"routing schema too big", http.MethodGet, "/v1/federation/routing?min_schema=99999999999", "", 400, "outside"},
		{"cluster exists", http.MethodPost, "/v1/federation/clusters", `{"name":"lab-a"}`, 409, "already enrolled"},
		{"revoke unknown", http.MethodDelete, "/v1/federation/clusters/lab-z", "", 404, "no cluster"},
		{"key without name", http.MethodPost, "/v1/apikeys", `{"role":"reader"}`, 400, "name is required"},
		{"key with unknown role", http.MethodPost, "/v1/apikeys", `{"name":"k","role":"root"}`, 400, "use one of reader, operator, admin"},
		{"key name with NUL", http.MethodPost, "/v1/apikeys", `{"name":"k\u0000"}`, 400, "NUL"},
		{"revoke unknown key", http.MethodDelete, "/v1/apikeys/99", "", 404, "no api key"},
		{"revoke key not a number", http.MethodDelete, "/v1/apikeys/x", "", 404, "no api key"},
		{"key ttl too short", http.MethodPost, "/v1/apikeys", `{"name":"k","ttl_seconds":59}`, 400, "ttl_seconds 59 is outside 60..31622400"},
		{"key ttl negative", http.MethodPost, "/v1/apikeys", `{"name":"k","ttl_seconds":-1}`, 400, "outside 60..31622400"},
		{"key ttl past a year", http.MethodPost, "/v1/apikeys", `{"name":"k","ttl_seconds":31622401}`, 400, "outside 60..31622400"},
		{"key ttl not a number", http.MethodPost, "/v1/apikeys", `{"name":"k","ttl_seconds":"1h"}`, 400, "invalid JSON"},
		{"rotate grace negative", http.MethodPost, "/v1/apikeys/1/rotate", `{"grace_seconds":-1}`, 400, "grace_seconds -1 is outside 0..2592000"},
		{"rotate grace too long", http.MethodPost, "/v1/apikeys/1/rotate", `{"grace_seconds":2592001}`, 400, "outside 0..2592000"},
		{"rotate unknown field", http.MethodPost, "/v1/apikeys/1/rotate", `{"grace":5}`, 400, "unknown field"},
		{"rotate unknown key", http.MethodPost, "/v1/apikeys/99/rotate", `{}`, 404, "no api key 99"},
		{"rotate key not a number", http.MethodPost, "/v1/apikeys/-3/rotate", ``, 404, "no api key"},
		{"rotate revoked key", http.MethodPost, "/v1/apikeys/2/rotate", ``, 409, "api key cannot be rotated: key 2 is revoked"},
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
	require.WithinDuration(t, time.Now().Add(60*time.Second), e.ExpiresAt, 5*time.Second)

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
	status, _, raw = do(t, srv, http.MethodGet, "/v1/federation/clusters/lab%2Da/health/history", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusOK, status, "an escaped name is unescaped: %s", raw)
}

// TestTextParams: NUL, invalid UTF-8 and overlong text in every text
// parameter that reaches PostgreSQL is a 400, before the store sees it.
func TestTextParams(t *testing.T) {
	t.Parallel()
	srv, cat := newCatalogTestServer(t)
	long := strings.Repeat("x", 300)
	for _, bad := range []string{"%00", "%ff", "%FF", "a%00b", "lab%c3", long} {
		for _, path := range []string{
			"/v1/datasets?q=" + bad, "/v1/datasets?animal=" + bad, "/v1/datasets?microscopy=" + bad, "/v1/datasets?node=" + bad,
			"/v1/datasets/" + bad + "/" + labADataset.String(),
		} {
			if bad == long && strings.Contains(path, "?q=") {
				continue // q may be 500 bytes
			}
			status, eb, raw := do(t, srv, http.MethodGet, path, "Bearer "+readerKey, "")
			require.Equal(t, http.StatusBadRequest, status, "%s: %s", path, raw)
			require.Equal(t, codeBadRequest, eb.Error.Code)
		}
	}
	require.Equal(t, store.DatasetQuery{}, cat.lastQuery(), "no search reached the store")
	status, _, raw := do(t, srv, http.MethodGet, "/v1/datasets?animal=m%C3%A4use&microscopy=SBEM", "Bearer "+readerKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Equal(t, "mäuse", cat.lastQuery().Animal)
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

// walkPath fills a route's parameters with values no fake knows.
func walkPath(path string) string {
	return regexp.MustCompile(`:[a-z_]+`).ReplaceAllStringFunc(path, func(p string) string {
		if p == ":id" {
			return "00000000-0000-4000-8000-00000000dead"
		}
		return "walk"
	})
}

// TestRoleTableWalk calls every route of the table on the real router with
// no key and with each role's key: below the route's role is a 403 with a
// JSON error, no key a 401, at or above it anything but 401 and 403.
func TestRoleTableWalk(t *testing.T) {
	t.Parallel()
	srv, _ := newCatalogTestServer(t)
	keys := map[string]string{store.RoleReader: readerKey, store.RoleOperator: operatorKey, store.RoleAdmin: goodKey}
	routes := New(config.API{}, Deps{}).Routes()
	require.Len(t, routes, 42)
	registered := map[string]bool{}
	for _, r := range New(config.API{}, Deps{Store: fakeStore{}}).e.Routes() {
		registered[r.Method+" "+r.Path] = true
	}
	for _, r := range routes {
		require.True(t, registered[r.Method+" "+r.Path], "%s %s is registered", r.Method, r.Path)
		if r.Role != Public {
			require.NotZero(t, store.RoleRank(r.Role), "%s %s: role %q", r.Method, r.Path, r.Role)
		}
		path := walkPath(r.Path)
		// An unknown field: an allowed POST is refused by its handler.
		body := `{"role_walk": true}`
		status, eb, _ := do(t, srv, r.Method, path, "", body)
		if r.Role == Public {
			require.NotContains(t, []int{401, 403}, status, path)
			continue
		}
		require.Equal(t, http.StatusUnauthorized, status, "no key: %s %s", r.Method, path)
		require.Equal(t, codeUnauthorized, eb.Error.Code)
		for _, role := range store.Roles {
			status, eb, raw := do(t, srv, r.Method, path, "Bearer "+keys[role], body)
			if store.RoleRank(role) < store.RoleRank(r.Role) {
				require.Equal(t, http.StatusForbidden, status, "%s key: %s %s: %s", role, r.Method, path, raw)
				require.Equal(t, codeForbidden, eb.Error.Code)
				require.Contains(t, eb.Error.Message, "needs the "+r.Role+" role")
				continue
			}
			require.NotContains(t, []int{401, 403}, status, "%s key: %s %s: %s", role, r.Method, path, raw)
		}
	}
}

// TestREADMEListsEveryRoute: the README's API table has a row for every
// route of the table, with its role, and no other rows.
func TestREADMEListsEveryRoute(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	row := regexp.MustCompile("(?m)^\\| `(GET|POST|DELETE) (/[^`]*)` \\| (none|reader|operator|admin) \\|")
	param := regexp.MustCompile(`\{[a-z_]+\}|:[a-z_]+`)
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(raw), -1) {
		documented[m[1]+" "+param.ReplaceAllString(m[2], "{}")] = m[3]
	}
	routes := New(config.API{}, Deps{}).Routes()
	want := map[string]string{}
	for _, r := range routes {
		role := r.Role
		if role == Public {
			role = "none"
		}
		want[r.Method+" "+param.ReplaceAllString(r.Path, "{}")] = role
	}
	require.Equal(t, want, documented)
}

func TestMayCancel(t *testing.T) {
	t.Parallel()
	owned := domain.Job{Owner: &domain.JobOwner{KeyID: 7, KeyName: "operator", Account: "default"}}
	ownerGone := domain.Job{Owner: &domain.JobOwner{Account: "default"}}
	cases := []struct {
		name string
		p    store.Principal
		j    domain.Job
		ok   bool
	}{
		{"owner operator", store.Principal{KeyID: 7, Role: store.RoleOperator}, owned, true},
		{"other operator", store.Principal{KeyID: 9, Role: store.RoleOperator}, owned, false},
		{"owner demoted to reader", store.Principal{KeyID: 7, Role: store.RoleReader}, owned, false},
		{"admin", store.Principal{KeyID: 1, Role: store.RoleAdmin}, owned, true},
		{"operator, job without owner", store.Principal{KeyID: 7, Role: store.RoleOperator}, domain.Job{}, false},
		{"operator, owner key gone", store.Principal{Role: store.RoleOperator}, ownerGone, false},
		{"admin, job without owner", store.Principal{KeyID: 1, Role: store.RoleAdmin}, domain.Job{}, true},
		{"unknown role", store.Principal{KeyID: 7, Role: "root"}, owned, false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.ok, mayCancel(tc.p, tc.j), tc.name)
	}
}

func TestCheckText(t *testing.T) {
	t.Parallel()
	require.NoError(t, checkText("q", "Thy1-GFP mäuse", 100))
	require.NoError(t, checkText("q", "", 100))
	for _, bad := range []string{"a\x00b", "\xff", "lab\xc3", strings.Repeat("x", 101)} {
		require.Error(t, checkText("q", bad, 100), "%q", bad)
	}
}

func TestDecodeStrictText(t *testing.T) {
	t.Parallel()
	var v map[string]any
	require.NoError(t, decodeStrict(strings.NewReader(`{"a": "back\\u0000slash is text"}`), &v), "an escaped backslash then u0000")
	require.NoError(t, decodeStrict(strings.NewReader(`{"a": "é\u00e9"}`), &v))
	for _, bad := range []string{`{"a": "x\u0000"}`, `{"a\u0000": 1}`, `{"a": ["ok", {"b": "\u0000"}]}`, "{\"a\": \"\xff\"}"} {
		require.Error(t, decodeStrict(strings.NewReader(bad), &v), bad)
	}
}

func TestKeyManagement(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	status, _, raw := do(t, srv, http.MethodPost, "/v1/apikeys", "Bearer "+goodKey, `{"name":"ci","role":"operator"}`)
	require.Equal(t, http.StatusCreated, status, string(raw))
	var ck CreatedKey
	require.NoError(t, json.Unmarshal(raw, &ck))
	require.Equal(t, CreatedKey{Key: "sdb_new", APIKey: store.APIKey{ID: 42, Name: "ci", Account: "default", Role: store.RoleOperator, Prefix: "sdb_new",
		CreatedBy: "key 1 (test)"}}, ck)
	status, _, raw = do(t, srv, http.MethodPost, "/v1/apikeys", "Bearer "+goodKey, `{"name":"ro"}`)
	require.Equal(t, http.StatusCreated, status, string(raw))
	require.NoError(t, json.Unmarshal(raw, &ck))
	require.Equal(t, store.RoleReader, ck.Role, "a key is a reader unless asked")
	status, _, raw = do(t, srv, http.MethodGet, "/v1/apikeys", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.NotContains(t, string(raw), "key_hash")
	require.Nil(t, ck.ExpiresAt)
	require.Equal(t, "key 1 (test)", ck.CreatedBy, "the key records the admin key that made it")
	status, _, raw = do(t, srv, http.MethodPost, "/v1/apikeys", "Bearer "+goodKey, `{"name":"ci","ttl_seconds":3600}`)
	require.Equal(t, http.StatusCreated, status, string(raw))
	require.NoError(t, json.Unmarshal(raw, &ck))
	require.Equal(t, time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC), *ck.ExpiresAt)
	status, _, raw = do(t, srv, http.MethodGet, "/v1/apikeys", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.NotContains(t, string(raw), "key_hash")
	status, _, raw = do(t, srv, http.MethodDelete, "/v1/apikeys/1", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))

	// A rotation answers the new key once, its record and the old key's;
	// the grace is a day unless given.
	for _, tc := range []struct {
		body  string
		grace time.Duration
	}{{``, 24 * time.Hour}, {`{}`, 24 * time.Hour}, {`{"grace_seconds": 0}`, 0}, {`{"grace_seconds": 90}`, 90 * time.Second}} {
		status, _, raw = do(t, srv, http.MethodPost, "/v1/apikeys/1/rotate", "Bearer "+goodKey, tc.body)
		require.Equal(t, http.StatusCreated, status, string(raw))
		var rk RotatedKey
		require.NoError(t, json.Unmarshal(raw, &rk))
		require.Equal(t, "sdb_rotated", rk.Key)
		require.Equal(t, int64(43), rk.ID)
		require.Equal(t, "key 1 (test)", rk.CreatedBy)
		require.Equal(t, int64(1), rk.Replaces.ID)
		require.Equal(t, store.KeyGrace, rk.Replaces.State)
		require.Equal(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(tc.grace), *rk.Replaces.ExpiresAt, tc.body)
	}
}

func TestExpiredKeyIsRefusedAsExpired(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	status, eb, raw := do(t, srv, http.MethodGet, "/v1/federation/clusters", "Bearer "+expiredKey, "")
	require.Equal(t, http.StatusUnauthorized, status, string(raw))
	require.Equal(t, ErrorBody{Error: ErrorDetail{Code: "unauthorized", Message: "expired API key"}}, eb)
	status, eb, _ = do(t, srv, http.MethodGet, "/v1/federation/clusters", "Bearer sdb_unknown", "")
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, "invalid or revoked API key", eb.Error.Message)
}
