package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

// TestMeshes: recorded meshes are counted per dataset in the catalog (a
// dataset's own only, each compartment once however often it is recorded),
// and read back with their metrics.
func TestMeshes(t *testing.T) {
	t.Parallel()
	st, _ := catalogTestStore(t, "lab-a", "lab-b")
	ctx := t.Context()
	a, b := dataset("meshes-a", ""), dataset("meshes-b", "")
	_, err := st.ReplaceCatalog(ctx, "lab-a", []store.CatalogDataset{a, b}, time.Now(), "wf")
	require.NoError(t, err)
	_, err = st.ReplaceCatalog(ctx, "lab-b", []store.CatalogDataset{a}, time.Now(), "wf")
	require.NoError(t, err)
	mesh := func(node string, ds uuid.UUID, cid uuid.UUID, v float64) store.Mesh {
		return store.Mesh{Node: node, DatasetID: ds, Table: "neuron", CID: cid, Object: "k", Format: "glb", Bytes: 10, SHA256: "x",
			Vertices: 8, Triangles: 12, Metrics: domain.MeshMetrics{Volume: v, SurfaceArea: 6, AreaVolumeRatio: 6 / v, Sphericity: 0.8}}
	}
	c1, c2 := uuid.New(), uuid.New()
	require.NoError(t, st.RecordMeshes(ctx, []store.Mesh{mesh("lab-a", a.ID, c1, 1), mesh("lab-a", a.ID, c2, 1), mesh("lab-b", a.ID, c1, 1)}))
	require.NoError(t, st.RecordMeshes(ctx, []store.Mesh{mesh("lab-a", a.ID, c1, 2)})) // again, other values

	for _, c := range []struct {
		node string
		id   uuid.UUID
		want int64
	}{{"lab-a", a.ID, 2}, {"lab-a", b.ID, 0}, {"lab-b", a.ID, 1}} {
		d, err := st.Dataset(ctx, c.node, c.id)
		require.NoError(t, err)
		require.Equal(t, c.want, d.Meshes, "%s %s", c.node, c.id)
	}
	page := search(t, st, store.DatasetQuery{Node: "lab-a"})
	counts := map[string]int64{}
	for _, d := range page.Datasets {
		counts[d.DatasetID] = d.Meshes
	}
	require.Equal(t, map[string]int64{a.ID.String(): 2, b.ID.String(): 0}, counts)

	got, err := st.Mesh(ctx, "lab-a", a.ID, "neuron", c1)
	require.NoError(t, err)
	require.InDelta(t, 2.0, got.Metrics.Volume, 0)
	require.InDelta(t, 3.0, got.Metrics.AreaVolumeRatio, 0)
	_, err = st.Mesh(ctx, "lab-a", b.ID, "neuron", c1)
	require.ErrorIs(t, err, domain.ErrNotFound)
}
