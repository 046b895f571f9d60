package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/devstack/fleet"
)

// waitCatalog waits until the hub's catalog lists dataset ds of lab-a (the
// catalog sync of a registering node fills it; a sync is asked for too).
func waitCatalog(t *testing.T, ds uuid.UUID) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		status, raw := apiDo(t, http.MethodGet, fmt.Sprintf("/v1/datasets/lab-a/%s", ds), "")
		if status == http.StatusOK {
			return
		}
		require.True(t, time.Now().Before(deadline), "dataset %s of lab-a is not in the catalog: %d %s", ds, status, raw)
		apiDo(t, http.MethodPost, "/v1/datasets/sync", `{"node": "lab-a"}`)
		<-tick.C
	}
}

// downloadMesh fetches c's mesh through the API's pre-signed URL.
func downloadMesh(t *testing.T, c meshCompartment) []byte {
	t.Helper()
	status, raw := apiDo(t, http.MethodGet, c.path("/neuron/"+c.cid.String()), "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var link api.MeshLink
	require.NoError(t, json.Unmarshal(raw, &link))
	require.Equal(t, "s3://syndb-meshes/"+c.key(), link.Location)
	require.NotNil(t, link.Metrics, "the hub recorded no metrics for %s", c.cid)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, link.URL, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, link.Bytes, int64(len(body)))
	return body
}

// meshAbsent checks that c has no stored mesh: the API answers 404 and the
// bucket has no object.
func meshAbsent(t *testing.T, c meshCompartment) {
	t.Helper()
	status, raw := apiDo(t, http.MethodGet, c.path("/neuron/"+c.cid.String()), "")
	require.Equal(t, http.StatusNotFound, status, string(raw))
	require.Contains(t, string(raw), "no mesh of neuron "+c.cid.String())
	_, err := s3Client(t).StatObject(t.Context(), fleet.MeshesBucket, c.key(), minio.StatObjectOptions{})
	require.Equal(t, minio.NoSuchKey, minio.ToErrorResponse(err).Code)
}

// restoreMesh puts c's row, objects and record back as they were before
// the test: the seed's values and no stored mesh.
func restoreMesh(t *testing.T, rows meshRows, s3 *minio.Client, c meshCompartment, was meshRow) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, o := range []struct{ bucket, key string }{{fleet.MeshesBucket, c.key()}, {"syndb-staging", "meshes/" + c.key()}} {
		if err := s3.RemoveObject(ctx, o.bucket, o.key, minio.RemoveObjectOptions{}); err != nil {
			t.Errorf("remove %s/%s: %v", o.bucket, o.key, err)
		}
	}
	pg, err := pgx.Connect(ctx, fed.Env["SYNDB_POSTGRES_DSN"])
	if err == nil {
		_, err = pg.Exec(ctx, `DELETE FROM meshes WHERE cluster = 'lab-a' AND dataset_id = $1 AND cid = $2`, c.dataset, c.cid)
		_ = pg.Close(ctx)
	}
	if err != nil {
		t.Errorf("remove the mesh record of %s: %v", c.cid, err)
	}
	now, err := rows.read(ctx, c)
	if err != nil || was.Rows == 0 || reflect.DeepEqual(now, was) {
		return
	}
	err = rows.conn.Exec(ctx, fmt.Sprintf(`ALTER TABLE neuron UPDATE mesh_volume = %v, mesh_surface_area = %v,
		mesh_area_volume_ratio = %v, mesh_sphericity = %v, s3_mesh_location = NULL WHERE dataset_id = toUUID('%s') AND cid = toUUID('%s')`,
		*was.Volume, *was.Area, *was.Ratio, *was.Sphericity, c.dataset, c.cid))
	if err != nil {
		t.Errorf("restore row %s: %v", c.cid, err)
		return
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !reflect.DeepEqual(now, was) {
		select {
		case <-ctx.Done():
			t.Errorf("row %s was not restored: %+v, was %+v", c.cid, now, was)
			return
		case <-tick.C:
		}
		if now, err = rows.read(ctx, c); err != nil {
			t.Errorf("read row %s: %v", c.cid, err)
			return
		}
	}
}
