package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack/fleet"
	"github.com/syndb/federation/internal/mesh"
	"github.com/syndb/federation/internal/seed"
	"github.com/syndb/federation/internal/store"
)

// meshRow is a compartment row's mesh columns on its node, and how many
// rows have its cid.
type meshRow struct {
	Volume, Area, Ratio, Sphericity *float64
	Location                        *string
	Rows                            uint64
}

// meshRows reads rows of lab-a's neuron table, on a connection that
// outlives the test's context (cleanups use it).
type meshRows struct{ conn driver.Conn }

func openMeshRows(t *testing.T) meshRows {
	t.Helper()
	conn, err := clickhouse.Open(context.Background(), config.ClickHouse{Addr: fed.Stack.Nodes["lab-a"].Addr(), User: "default", Database: "syndb"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return meshRows{conn: conn}
}

func (m meshRows) read(ctx context.Context, c meshCompartment) (meshRow, error) {
	var r meshRow
	err := m.conn.QueryRow(ctx, fmt.Sprintf(`SELECT any(mesh_volume), any(mesh_surface_area), any(mesh_area_volume_ratio),
		any(mesh_sphericity), any(s3_mesh_location), count() FROM neuron WHERE dataset_id = toUUID('%s') AND cid = toUUID('%s')`,
		c.dataset, c.cid)).Scan(&r.Volume, &r.Area, &r.Ratio, &r.Sphericity, &r.Location, &r.Rows)
	return r, err
}

func (m meshRows) get(t *testing.T, c meshCompartment) meshRow {
	t.Helper()
	r, err := m.read(t.Context(), c)
	require.NoError(t, err)
	return r
}

// meshCompartment is one neuron row of the first seeded dataset of lab-a.
type meshCompartment struct {
	dataset, cid uuid.UUID
}

func (m meshCompartment) path(suffix string) string {
	return fmt.Sprintf("/v1/datasets/lab-a/%s/meshes%s", m.dataset, suffix)
}

func (m meshCompartment) key() string { return fmt.Sprintf("lab-a/%s/neuron/%s.glb", m.dataset, m.cid) }

// uploadMesh asks for the upload of c's mesh and posts body to it, returning
// S3's status and answer.
func uploadMesh(t *testing.T, c meshCompartment, body []byte) (int, string) {
	t.Helper()
	status, raw := apiDo(t, http.MethodPost, c.path(""), fmt.Sprintf(`{"table": "neuron", "cid": %q, "format": "glb"}`, c.cid))
	require.Equal(t, http.StatusCreated, status, string(raw))
	var up api.MeshUpload
	require.NoError(t, json.Unmarshal(raw, &up))
	require.Equal(t, "s3://"+fleet.MeshesBucket+"/"+c.key(), up.Location)
	resp, err := postUpload(t.Context(), api.Upload{URL: up.URL, Method: up.Method, Fields: up.Fields}, "mesh.glb",
		bytes.NewReader(body), int64(len(body)))
	require.NoError(t, err)
	answer, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, string(answer)
}

// ingestMesh starts the ingest of c's mesh and waits for it to end.
func ingestMesh(t *testing.T, c meshCompartment) api.MeshIngestStatus {
	t.Helper()
	path := c.path("/neuron/" + c.cid.String() + "/ingest")
	status, raw := apiDo(t, http.MethodPost, path, "")
	require.Equal(t, http.StatusAccepted, status, string(raw))
	var started api.SyncStarted
	require.NoError(t, json.Unmarshal(raw, &started))
	require.Equal(t, fed.APIURL+path, started.StatusURL)
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		status, raw = apiDo(t, http.MethodGet, path, "")
		require.Equal(t, http.StatusOK, status, string(raw))
		var st api.MeshIngestStatus
		require.NoError(t, json.Unmarshal(raw, &st))
		if st.RunID == started.RunID && st.Status != "running" {
			return st
		}
		require.True(t, time.Now().Before(deadline), "ingest of %s still %s", c.cid, st.Status)
		<-tick.C
	}
}

// unitCube is [0,1]³ wound outwards: V = 1, A = 6 by hand, and sphericity
// π^(1/3)·6^(2/3)/6.
func unitCube() *mesh.Mesh {
	return &mesh.Mesh{
		Vertices: [][3]float64{{0, 0, 0}, {1, 0, 0}, {1, 1, 0}, {0, 1, 0}, {0, 0, 1}, {1, 0, 1}, {1, 1, 1}, {0, 1, 1}},
		Triangles: [][3]uint32{{0, 2, 1}, {0, 3, 2}, {4, 5, 6}, {4, 6, 7}, {0, 1, 5}, {0, 5, 4},
			{3, 7, 6}, {3, 6, 2}, {0, 4, 7}, {0, 7, 3}, {1, 2, 6}, {1, 6, 5}},
	}
}

const cubeSphericity = 0.8059959770082

// pyramidOracle measures a convex mesh around the origin another way than
// the code does: each face is the base of a pyramid with its apex at the
// origin, of volume area·height/3, the face's area by Heron's formula from
// its sides and the height the distance from the origin to its plane. The
// vertices are rounded to float32, as the GLB holds them.
func pyramidOracle(m *mesh.Mesh) (vol, area float64) {
	p := func(i uint32) [3]float64 {
		v := m.Vertices[i]
		return [3]float64{float64(float32(v[0])), float64(float32(v[1])), float64(float32(v[2]))}
	}
	dist := func(a, b [3]float64) float64 {
		return math.Sqrt((a[0]-b[0])*(a[0]-b[0]) + (a[1]-b[1])*(a[1]-b[1]) + (a[2]-b[2])*(a[2]-b[2]))
	}
	for _, t := range m.Triangles {
		a, b, c := p(t[0]), p(t[1]), p(t[2])
		x, y, z := dist(a, b), dist(b, c), dist(c, a)
		s := (x + y + z) / 2
		f := math.Sqrt(s * (s - x) * (s - y) * (s - z))
		n := [3]float64{(b[1]-a[1])*(c[2]-a[2]) - (b[2]-a[2])*(c[1]-a[1]), (b[2]-a[2])*(c[0]-a[0]) - (b[0]-a[0])*(c[2]-a[2]),
			(b[0]-a[0])*(c[1]-a[1]) - (b[1]-a[1])*(c[0]-a[0])}
		h := math.Abs(n[0]*a[0]+n[1]*a[1]+n[2]*a[2]) / math.Sqrt(n[0]*n[0]+n[1]*n[1]+n[2]*n[2])
		vol, area = vol+f*h/3, area+f
	}
	return vol, area
}

// TestMeshIngest: meshes uploaded through the pre-signed POST with a plain
// HTTP client and ingested end up measured in their rows on the node (read
// with clickhouse-go on the node's ClickHouse, against values computed by
// hand or by another formula), download as the same bytes, count in the
// catalog (against the objects S3 lists), and ingest again to the same
// row; a corrupt, an open, an oversized mesh and a cid the node does not
// have each fail with the reason and leave their row as it was.
func TestMeshIngest(t *testing.T) {
	routableNodes(t)
	ds := seed.DatasetID("lab-a", 0)
	waitCatalog(t, ds)
	s3 := s3Client(t)
	rows := openMeshRows(t)
	// Rows past the seed's meshes: they have the seed's metrics and no
	// stored mesh. Each is put back as it was.
	row := func(k int) meshCompartment {
		return meshCompartment{dataset: ds, cid: uuid.NewSHA1(ds, fmt.Appendf(nil, "neuron/%d", 40+k))}
	}
	cube, ico, corrupt, open, big, bypass := row(0), row(1), row(2), row(3), row(4), row(5)
	missing := meshCompartment{dataset: ds, cid: uuid.New()}
	before := map[uuid.UUID]meshRow{}
	for _, c := range []meshCompartment{cube, ico, corrupt, open, big, bypass, missing} {
		before[c.cid] = rows.get(t, c)
		t.Cleanup(func() { restoreMesh(t, rows, s3, c, before[c.cid]) })
	}
	require.Equal(t, uint64(1), before[cube.cid].Rows)
	require.Nil(t, before[cube.cid].Location, "the row must start without a stored mesh")
	require.Equal(t, uint64(0), before[missing.cid].Rows)

	t.Run("cube", func(t *testing.T) {
		glb, err := mesh.EncodeGLB(unitCube())
		require.NoError(t, err)
		status, answer := uploadMesh(t, cube, glb)
		require.Equal(t, http.StatusNoContent, status, answer)
		st := ingestMesh(t, cube)
		require.Equal(t, "completed", st.Status, "%s %s", st.Error, st.Reason)
		recordHistoryTo(t, temporalClient(t), st.WorkflowID, st.RunID, os.Getenv("SYNDB_RECORD_MESH_HISTORY"))
		got := rows.get(t, cube)
		require.Equal(t, uint64(1), got.Rows)
		require.InDelta(t, 1, *got.Volume, 1e-12)
		require.InDelta(t, 6, *got.Area, 1e-12)
		require.InDelta(t, 6, *got.Ratio, 1e-12)
		require.InDelta(t, cubeSphericity, *got.Sphericity, 1e-12)
		require.Equal(t, "s3://syndb-meshes/"+cube.key(), *got.Location)
		require.Equal(t, glb, downloadMesh(t, cube), "the download is not the upload")

		// Again: the stored mesh is measured again, the row stays as it is.
		again := ingestMesh(t, cube)
		require.Equal(t, "completed", again.Status, again.Error)
		require.Equal(t, "stored", again.Reading.Source)
		require.False(t, again.Written.Changed)
		require.Equal(t, got, rows.get(t, cube))
	})

	t.Run("icosphere", func(t *testing.T) {
		const r = 1.5
		m := mesh.Icosphere(3, r)
		glb, err := mesh.EncodeGLB(m)
		require.NoError(t, err)
		status, answer := uploadMesh(t, ico, glb)
		require.Equal(t, http.StatusNoContent, status, answer)
		st := ingestMesh(t, ico)
		require.Equal(t, "completed", st.Status, "%s %s", st.Error, st.Reason)
		wantV, wantA := pyramidOracle(m)
		got := rows.get(t, ico)
		require.InDelta(t, wantV, *got.Volume, 1e-9*wantV)
		require.InDelta(t, wantA, *got.Area, 1e-9*wantA)
		require.InDelta(t, wantA/wantV, *got.Ratio, 1e-9*wantA/wantV)
		require.InDelta(t, math.Cbrt(math.Pi)*math.Pow(6*wantV, 2.0/3.0)/wantA, *got.Sphericity, 1e-9)
		// Inscribed in the sphere, and within 1 % of it at level 3.
		require.Less(t, *got.Volume, 4*math.Pi*r*r*r/3)
		require.Greater(t, *got.Volume, 0.99*4*math.Pi*r*r*r/3)
		require.Equal(t, glb, downloadMesh(t, ico))
	})

	open3 := unitCube()
	open3.Triangles = open3.Triangles[1:]
	openGLB, err := mesh.EncodeGLB(open3)
	require.NoError(t, err)
	cubeGLB, err := mesh.EncodeGLB(unitCube())
	require.NoError(t, err)
	for _, c := range []struct {
		name string
		c    meshCompartment
		body []byte
		want string
	}{
		{"corrupt", corrupt, bytes.Repeat([]byte("not a mesh "), 100), `not a glTF binary (.glb): the file does not start with "glTF"`},
		{"open", open, openGLB, "the surface is open: 3 edges belong to one triangle only"},
		{"cid the node does not have", missing, cubeGLB, "has no row in neuron with dataset_id " + ds.String() + " and cid " + missing.cid.String()},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, answer := uploadMesh(t, c.c, c.body)
			require.Equal(t, http.StatusNoContent, status, answer)
			st := ingestMesh(t, c.c)
			require.Equal(t, "failed", st.Status)
			require.Contains(t, st.Reason, c.want)
			require.Equal(t, before[c.c.cid], rows.get(t, c.c), "a failed ingest changed the row")
			meshAbsent(t, c.c)
		})
	}

	t.Run("oversized", func(t *testing.T) {
		limit := 1 << 20 // SYNDB_MESH_MAX_UPLOAD_BYTES of the test federation
		status, answer := uploadMesh(t, big, make([]byte, limit+1))
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, answer, "EntityTooLarge")
		// Past the policy (straight into the staging bucket), the worker
		// refuses it before it reads it.
		_, err := s3.PutObject(t.Context(), "syndb-staging", "meshes/"+bypass.key(), bytes.NewReader(make([]byte, limit+1)),
			int64(limit+1), minio.PutObjectOptions{})
		require.NoError(t, err)
		st := ingestMesh(t, bypass)
		require.Equal(t, "failed", st.Status)
		require.Contains(t, st.Reason, fmt.Sprintf("the file is %d bytes, over the %d-byte cap", limit+1, limit))
		for _, c := range []meshCompartment{big, bypass} {
			require.Equal(t, before[c.cid], rows.get(t, c))
			meshAbsent(t, c)
		}
	})

	t.Run("catalog", func(t *testing.T) {
		status, raw := apiDo(t, http.MethodGet, fmt.Sprintf("/v1/datasets/lab-a/%s", ds), "")
		require.Equal(t, http.StatusOK, status, string(raw))
		var d store.Dataset
		require.NoError(t, json.Unmarshal(raw, &d))
		objects := 0
		for o := range s3.ListObjects(t.Context(), fleet.MeshesBucket, minio.ListObjectsOptions{Prefix: "lab-a/" + ds.String() + "/", Recursive: true}) {
			require.NoError(t, o.Err)
			objects++
		}
		require.Equal(t, int64(objects), d.Meshes, "the catalog's count is not the objects S3 holds")
		require.GreaterOrEqual(t, objects, 2)
	})
}
