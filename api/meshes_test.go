package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/registry"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/schemas"
)

// meshFleet is fakeStore with a second active node named "sync", whose
// routes share their first segments with /v1/datasets/sync/{id}.
type meshFleet struct{ fakeStore }

func (meshFleet) Clusters(ctx context.Context, active bool) ([]domain.Cluster, error) {
	cs, err := fakeStore{}.Clusters(ctx, active)
	return append(cs, domain.Cluster{Name: "sync", Health: "healthy", Status: "active"}), err
}

// meshCatalog holds one dataset on lab-a and one on sync, each with neuron
// rows only.
type meshCatalog struct{ fakeCatalog }

func (*meshCatalog) Dataset(_ context.Context, cluster string, id uuid.UUID) (store.Dataset, error) {
	if (cluster == "lab-a" && id == labADataset) || (cluster == "sync" && id == syncDataset) {
		return store.Dataset{Node: cluster, DatasetID: id.String(), Tables: []store.TableRows{{Table: "neuron", Rows: 5}}}, nil
	}
	return store.Dataset{}, domain.ErrNotFound
}

func newMeshTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(t, err)
	reg, err := registry.New(t.Context(), meshFleet{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	objects, err := minio.New("s3.test:9000", &minio.Options{Creds: credentials.NewStaticV4("k", "s", ""), Region: "us-east-1"})
	require.NoError(t, err)
	cfg := config.API{PublicURL: "http://hub", S3: config.S3{StagingBucket: "staging", MeshesBucket: "syndb-meshes"},
		Mesh: config.Mesh{MaxUploadBytes: 4096}}
	s := New(cfg, Deps{Store: fakeStore{}, Registry: reg, Objects: objects, Log: slog.New(slog.DiscardHandler),
		Migrations: migs, SchemaHead: len(migs), Catalog: &meshCatalog{}})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// TestMeshUpload: a mesh upload is a POST policy for the compartment's one
// staged object, capped at SYNDB_MESH_MAX_UPLOAD_BYTES, with the links to
// ingest it; a node named "sync" is routed like any other.
func TestMeshUpload(t *testing.T) {
	t.Parallel()
	srv := newMeshTestServer(t)
	cid := uuid.New()
	for _, c := range []struct{ node, dataset string }{{"lab-a", labADataset.String()}, {"sync", syncDataset.String()}} {
		path := "/v1/datasets/" + c.node + "/" + strings.ToUpper(c.dataset) + "/meshes"
		status, _, raw := do(t, srv, http.MethodPost, path, "Bearer "+operatorKey, `{"table": "neuron", "cid": "`+cid.String()+`", "format": "GLB"}`)
		require.Equal(t, http.StatusCreated, status, string(raw))
		var up MeshUpload
		require.NoError(t, json.Unmarshal(raw, &up))
		key := c.node + "/" + c.dataset + "/neuron/" + cid.String() + ".glb"
		require.Equal(t, "meshes/"+key, up.Object)
		require.Equal(t, up.Object, up.Fields["key"])
		require.Equal(t, "http://s3.test:9000/staging/", up.URL)
		require.Equal(t, "s3://syndb-meshes/"+key, up.Location)
		require.Equal(t, "http://hub/v1/datasets/"+c.node+"/"+c.dataset+"/meshes/neuron/"+cid.String()+"/ingest", up.IngestURL)
		require.Equal(t, int64(4096), up.MaxBytes)
		doc, err := base64.StdEncoding.DecodeString(up.Fields["policy"])
		require.NoError(t, err)
		var policy struct {
			Conditions []json.RawMessage `json:"conditions"`
		}
		require.NoError(t, json.Unmarshal(doc, &policy))
		conds := map[string]bool{}
		for _, cond := range policy.Conditions {
			var b bytes.Buffer
			require.NoError(t, json.Compact(&b, cond))
			conds[b.String()] = true
		}
		require.True(t, conds[`["content-length-range",1,4096]`], "the policy caps the size: %s", doc)
		require.True(t, conds[`["eq","$key","meshes/`+key+`"]`], "%s", doc)
	}
}

// TestMeshUploadRefusals: every client mistake is a 4xx with a JSON error
// that says what is wrong, never a 500.
func TestMeshUploadRefusals(t *testing.T) {
	t.Parallel()
	srv := newMeshTestServer(t)
	ds, cid := labADataset.String(), uuid.New().String()
	body := func(table, cid, format string) string {
		raw, _ := json.Marshal(MeshUploadRequest{Table: table, CID: cid, Format: format})
		return string(raw)
	}
	for _, c := range []struct {
		name, path, key, body string
		status                int
		want                  string
	}{
		{"ply", "lab-a/" + ds, operatorKey, body("neuron", cid, "ply"), 400, `unsupported mesh format \"ply\": supported formats are glb`},
		{"stl", "lab-a/" + ds, operatorKey, body("neuron", cid, "stl"), 400, "supported formats are glb"},
		{"cid not a UUID", "lab-a/" + ds, operatorKey, body("neuron", "c-17", ""), 400, `cid \"c-17\" is not a UUID`},
		{"no table", "lab-a/" + ds, operatorKey, body("", cid, ""), 400, "is not a table name"},
		{"datasets table", "lab-a/" + ds, operatorKey, body("datasets", cid, ""), 400,
			`table \"datasets\" holds no meshes: the tables with mesh columns are axon, dendrite`},
		{"ontology table", "lab-a/" + ds, operatorKey, body("ontology_terms", cid, ""), 400, "holds no meshes"},
		{"unknown table", "lab-a/" + ds, operatorKey, body("neurons", cid, ""), 400, "holds no meshes"},
		{"dataset not a UUID", "lab-a/v1", operatorKey, body("neuron", cid, ""), 400, `dataset ID \"v1\" is not a UUID`},
		{"unknown node", "lab-z/" + ds, operatorKey, body("neuron", cid, ""), 404, `no node \"lab-z\"`},
		{"revoked node", "lab-old/" + ds, operatorKey, body("neuron", cid, ""), 404, `no node \"lab-old\"`},
		{"unknown dataset", "lab-a/" + uuid.NewString(), operatorKey, body("neuron", cid, ""), 404, "no dataset"},
		{"no rows in the table", "lab-a/" + ds, operatorKey, body("axon", cid, ""), 404, "has no axon rows"},
		{"not JSON", "lab-a/" + ds, operatorKey, `{"table": `, 400, ""},
		{"reader", "lab-a/" + ds, readerKey, body("neuron", cid, ""), 403, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			status, eb, raw := do(t, srv, http.MethodPost, "/v1/datasets/"+c.path+"/meshes", "Bearer "+c.key, c.body)
			require.Equal(t, c.status, status, string(raw))
			require.NotEmpty(t, eb.Error.Code, string(raw))
			require.Contains(t, string(raw), c.want)
		})
	}
	// The other mesh routes check the same, from the path.
	for _, path := range []string{"/meshes/neuron/c-17", "/meshes/datasets/" + cid, "/meshes/neuron/c-17/ingest"} {
		status, _, raw := do(t, srv, http.MethodGet, "/v1/datasets/lab-a/"+ds+path, "Bearer "+readerKey, "")
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", path, raw)
	}
	status, _, raw := do(t, srv, http.MethodPost, "/v1/datasets/lab-a/"+ds+"/meshes/neuron/"+cid+"/ingest", "Bearer "+readerKey, "")
	require.Equal(t, http.StatusForbidden, status, string(raw))
}
