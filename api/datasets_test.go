package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/ontology"
	"github.com/syndb/federation/internal/registry"
	"github.com/syndb/federation/internal/store"
)

// fakeCatalog serves one dataset on lab-a and one on a node named "sync",
// and records the last search.
type fakeCatalog struct {
	mu   sync.Mutex
	last store.DatasetQuery
}

var (
	labADataset = uuid.MustParse("0b7f1e1c-3c56-4f0e-8d1e-4d3f8f1c2a10")
	syncDataset = uuid.MustParse("7d1f2a9c-1b2c-4e5f-9a6b-0c1d2e3f4a5b")
)

func (f *fakeCatalog) SearchDatasets(_ context.Context, q store.DatasetQuery) (store.DatasetPage, error) {
	f.mu.Lock()
	f.last = q
	f.mu.Unlock()
	return store.DatasetPage{Datasets: []store.Dataset{{Node: "lab-a", DatasetID: labADataset.String(), Name: "v1"}}, Total: 3}, nil
}

func (f *fakeCatalog) Dataset(_ context.Context, cluster string, id uuid.UUID) (store.Dataset, error) {
	if (cluster == "lab-a" && id == labADataset) || (cluster == "sync" && id == syncDataset) {
		return store.Dataset{Node: cluster, DatasetID: id.String(), Name: "v1"}, nil
	}
	return store.Dataset{}, domain.ErrNotFound
}

func (f *fakeCatalog) OntologyTarget(context.Context) (store.OntologyTarget, error) {
	return store.OntologyTarget{Version: 1, Checksum: "x", WorkflowID: "ontology-sync-v1", UpdatedAt: time.Now()}, nil
}

func (f *fakeCatalog) ClusterOntologies(context.Context) ([]store.ClusterOntology, error) {
	return []store.ClusterOntology{{Cluster: "lab-a", Version: 1}, {Cluster: "lab-b"}}, nil
}

func (f *fakeCatalog) lastQuery() store.DatasetQuery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func newCatalogTestServer(t *testing.T) (*httptest.Server, *fakeCatalog) {
	t.Helper()
	reg, err := registry.New(t.Context(), fakeStore{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	cat := &fakeCatalog{}
	s := New(config.API{PublicURL: "http://hub", SyncConcurrency: 32},
		Deps{Store: fakeStore{}, Registry: reg, Log: slog.New(slog.DiscardHandler), SchemaHead: 3, Catalog: cat})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv, cat
}

func TestDatasetSearchInput(t *testing.T) {
	t.Parallel()
	srv, cat := newCatalogTestServer(t)
	auth := "Bearer " + goodKey
	cases := []struct {
		name, query string
		status      int
		contains    string
	}{
		{"limit not a number", "limit=ten", 400, `limit="ten" is not a number`},
		{"limit zero", "limit=0", 400, "outside 1..1000"},
		{"limit too high", "limit=1001", 400, "outside 1..1000"},
		{"offset negative", "offset=-1", 400, "outside 0.."},
		{"offset not a number", "offset=1e3", 400, "not a number"},
		{"bad node", "node=Lab%20A", 400, "not a node name"},
		{"q too long", "q=" + strings.Repeat("a", maxSearchText+1), 400, "at most 500"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, eb, raw := do(t, srv, http.MethodGet, "/v1/datasets?"+tc.query, auth, "")
			require.Equal(t, tc.status, status, string(raw))
			require.Contains(t, eb.Error.Message, tc.contains)
		})
	}

	status, _, raw := do(t, srv, http.MethodGet, "/v1/datasets?q=+granule+cells+&animal=mouse&microscopy=FIB-SEM&node=lab-a&limit=1&offset=1", auth, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Equal(t, store.DatasetQuery{Text: "granule cells", Animal: "mouse", Microscopy: "FIB-SEM", Node: "lab-a", Limit: 1, Offset: 1},
		cat.lastQuery(), "q is trimmed, filters passed as they are")
	var page DatasetSearch
	require.NoError(t, json.Unmarshal(raw, &page))
	require.Equal(t, 3, page.Total)
	require.Len(t, page.Datasets, 1)
	next, err := url.Parse(page.Next)
	require.NoError(t, err)
	require.Equal(t, "/v1/datasets", next.Path)
	require.Equal(t, "2", next.Query().Get("offset"))
	require.Equal(t, "granule cells", strings.TrimSpace(next.Query().Get("q")))

	status, _, raw = do(t, srv, http.MethodGet, "/v1/datasets", auth, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Equal(t, store.DatasetQuery{Limit: store.DefaultDatasetLimit}, cat.lastQuery())
}

func TestDatasetByNodeAndID(t *testing.T) {
	t.Parallel()
	srv, _ := newCatalogTestServer(t)
	auth := "Bearer " + goodKey
	status, _, raw := do(t, srv, http.MethodGet, "/v1/datasets/lab-a/"+labADataset.String(), auth, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var d store.Dataset
	require.NoError(t, json.Unmarshal(raw, &d))
	require.Equal(t, "lab-a", d.Node)

	status, eb, _ := do(t, srv, http.MethodGet, "/v1/datasets/lab-a/"+uuid.NewString(), auth, "")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, eb.Error.Message, "no dataset")
	status, eb, _ = do(t, srv, http.MethodGet, "/v1/datasets/lab-a/not-a-uuid", auth, "")
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, eb.Error.Message, "not a UUID")

	// A node named "sync" keeps its datasets: a UUID is not a sync's ID.
	status, _, raw = do(t, srv, http.MethodGet, "/v1/datasets/sync/"+syncDataset.String(), auth, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.NoError(t, json.Unmarshal(raw, &d))
	require.Equal(t, "sync", d.Node)
	status, eb, _ = do(t, srv, http.MethodGet, "/v1/datasets/sync/DROP%20TABLE", auth, "")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, eb.Error.Message, "no catalog sync")
}

func TestSyncRequestsAreChecked(t *testing.T) {
	t.Parallel()
	srv, _ := newCatalogTestServer(t)
	auth := "Bearer " + goodKey
	cases := []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"catalog concurrency", http.MethodPost, "/v1/datasets/sync", `{"concurrency":5000}`, 400, "outside 1..1000"},
		{"catalog bad node", http.MethodPost, "/v1/datasets/sync", `{"node":"Lab A"}`, 400, "not a node name"},
		{"catalog unknown node", http.MethodPost, "/v1/datasets/sync", `{"node":"lab-z"}`, 404, "no node"},
		{"catalog revoked node", http.MethodPost, "/v1/datasets/sync", `{"node":"lab-old"}`, 404, "no node"},
		{"catalog unknown field", http.MethodPost, "/v1/datasets/sync", `{"nodes":["lab-a"]}`, 400, "unknown field"},
		{"ontology concurrency", http.MethodPost, "/v1/ontology/sync", `{"concurrency":-1}`, 400, "outside 1..1000"},
		{"ontology bad json", http.MethodPost, "/v1/ontology/sync", `{`, 400, "invalid JSON"},
		{"ontology bad id", http.MethodGet, "/v1/ontology/sync/schema-sync-v3", "", 404, "no ontology sync"},
		{"ontology terms flag", http.MethodGet, "/v1/ontology?terms=maybe", "", 400, "use true or false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, eb, raw := do(t, srv, tc.method, tc.path, auth, tc.body)
			require.Equal(t, tc.status, status, string(raw))
			require.Contains(t, eb.Error.Message, tc.contains)
		})
	}
}

func TestOntologyStatus(t *testing.T) {
	t.Parallel()
	srv, _ := newCatalogTestServer(t)
	onto, err := ontology.Embedded()
	require.NoError(t, err)
	status, _, raw := do(t, srv, http.MethodGet, "/v1/ontology", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var out OntologyStatus
	require.NoError(t, json.Unmarshal(raw, &out))
	require.Equal(t, onto.Version, out.Version)
	require.Equal(t, onto.Checksum, out.Checksum)
	require.Equal(t, len(onto.Terms), out.Terms)
	require.Equal(t, 1, out.Target.Version)
	require.Len(t, out.Nodes, 2)
	require.Equal(t, ontologySynced, out.Nodes[0].State)
	require.Equal(t, ontologyBehind, out.Nodes[1].State)
	require.Empty(t, out.TermList)

	status, _, raw = do(t, srv, http.MethodGet, "/v1/ontology?terms=true", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.NoError(t, json.Unmarshal(raw, &out))
	require.Len(t, out.TermList, len(onto.Terms))
}

func TestCatalogSyncIDs(t *testing.T) {
	t.Parallel()
	for id, ok := range map[string]bool{
		"catalog-sync": true, "catalog-sync-node-lab-a": true, "catalog-sync-scheduled-2025-11-25T17:00:00Z": true,
		"catalog-sync-node-": false, "catalog-sync-node-Lab": false, "catalog-sync-x": false, "schema-sync-v3": false,
	} {
		require.Equal(t, ok, catalogSyncIDRe.MatchString(id), id)
	}
	for id, ok := range map[string]bool{
		"ontology-sync-v1": true, "ontology-catchup-lab-b-v12": true, "ontology-sync-v": false, "ontology-catchup--v1": false,
	} {
		require.Equal(t, ok, ontologySyncIDRe.MatchString(id), id)
	}
}
