package nodeagent

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// meshRow is a compartment row's mesh columns, as ClickHouse holds them.
type meshRow struct {
	Volume, Area, Ratio, Sphericity *float64
	Location                        *string
	Rows                            uint64
}

// TestMeshMetrics: MeshMetrics writes a mesh's values into its one row
// (read back from ClickHouse), writing again changes nothing and adds no
// row, a cid without a row is not_found and changes nothing, a table
// without mesh columns is refused, and a peer that is not the hub is
// refused before anything is read.
func TestMeshMetrics(t *testing.T) {
	t.Parallel()
	f := startAgent(t, "lab-mesh", "mesh_metrics")
	conn := openDB(t, f.db)
	ctx := t.Context()
	require.NoError(t, conn.Exec(ctx, "DROP TABLE IF EXISTS neuron"))
	require.NoError(t, conn.Exec(ctx, `CREATE TABLE neuron (dataset_id UUID, cid UUID, mesh_volume Nullable(Float64),
		mesh_surface_area Nullable(Float64), mesh_area_volume_ratio Nullable(Float64), mesh_sphericity Nullable(Float64),
		s3_mesh_location Nullable(String)) ENGINE = MergeTree() ORDER BY (dataset_id, cid)`))
	require.NoError(t, conn.Exec(ctx, "DROP TABLE IF EXISTS plain"))
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE plain (dataset_id UUID, cid UUID) ENGINE = Memory"))
	ds, cid, other := uuid.New(), uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{cid, other} {
		require.NoError(t, conn.Exec(ctx, "INSERT INTO neuron (dataset_id, cid) SELECT toUUID('"+ds.String()+"'), toUUID('"+id.String()+"')"))
	}
	read := func(id uuid.UUID) meshRow {
		var r meshRow
		require.NoError(t, conn.QueryRow(ctx, `SELECT any(mesh_volume), any(mesh_surface_area), any(mesh_area_volume_ratio),
			any(mesh_sphericity), any(s3_mesh_location), count() FROM neuron WHERE cid = toUUID('`+id.String()+`')`).
			Scan(&r.Volume, &r.Area, &r.Ratio, &r.Sphericity, &r.Location, &r.Rows))
		return r
	}
	req := func(id uuid.UUID) *wire.MeshMetricsRequest {
		return &wire.MeshMetricsRequest{Table: "neuron", DatasetId: ds.String(), Cid: id.String(),
			MeshVolume: 4.1887902047863905, MeshSurfaceArea: 12.566370614359172, MeshAreaVolumeRatio: 3.0000000000000004,
			MeshSphericity: 0.9999999999999999, S3MeshLocation: "s3://syndb-meshes/lab-mesh/" + ds.String() + "/neuron/" + id.String() + ".glb"}
	}
	call := func(r *wire.MeshMetricsRequest) (*wire.MeshMetricsResponse, error) {
		var resp wire.MeshMetricsResponse
		err := p2p.Call(ctx, f.hub, f.agent.PeerID(), p2p.MeshMetrics, r, &resp)
		return &resp, err
	}
	untouched := read(other)

	resp, err := call(req(cid))
	require.NoError(t, err)
	require.Equal(t, uint64(1), resp.GetRows())
	require.True(t, resp.GetChanged())
	got := read(cid)
	want := req(cid)
	require.Equal(t, uint64(1), got.Rows)
	require.Equal(t, want.GetMeshVolume(), *got.Volume) // bit for bit: the literal round-trips
	require.Equal(t, want.GetMeshSurfaceArea(), *got.Area)
	require.Equal(t, want.GetMeshAreaVolumeRatio(), *got.Ratio)
	require.Equal(t, want.GetMeshSphericity(), *got.Sphericity)
	require.Equal(t, want.GetS3MeshLocation(), *got.Location)
	require.Equal(t, untouched, read(other), "another row of the dataset changed")

	resp, err = call(req(cid))
	require.NoError(t, err)
	require.False(t, resp.GetChanged(), "the same values again are no change")
	require.Equal(t, got, read(cid))

	check := &wire.MeshMetricsRequest{Table: "neuron", DatasetId: ds.String(), Cid: other.String(), CheckOnly: true}
	resp, err = call(check)
	require.NoError(t, err)
	require.Equal(t, uint64(1), resp.GetRows())
	require.Equal(t, untouched, read(other), "check_only wrote")

	missing := uuid.New()
	_, err = call(req(missing))
	require.True(t, p2p.IsCode(err, p2p.CodeNotFound), "%v", err)
	require.ErrorContains(t, err, "has no row in neuron with dataset_id "+ds.String()+" and cid "+missing.String())
	require.Equal(t, uint64(0), read(missing).Rows)

	plain := req(cid)
	plain.Table = "plain"
	_, err = call(plain)
	require.True(t, p2p.IsCode(err, p2p.CodeInvalid), "%v", err)
	require.ErrorContains(t, err, "has no mesh_volume Float64 column")

	bad := req(cid)
	bad.S3MeshLocation = "s3://syndb-meshes/x'); DROP TABLE neuron; --"
	_, err = call(bad)
	require.ErrorContains(t, err, "is not s3://bucket/key")

	stranger, err := p2p.NewHost(p2p.HostConfig{Key: newKey(t), Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = stranger.Close() })
	stranger.Peerstore().AddAddrs(f.agent.PeerID(), f.agent.host.Addrs(), 1<<62)
	var resp2 wire.MeshMetricsResponse
	err = p2p.Call(context.Background(), stranger, f.agent.PeerID(), p2p.MeshMetrics, req(other), &resp2)
	require.True(t, p2p.IsCode(err, p2p.CodeUnauthorized), "%v", err)
	require.Equal(t, untouched, read(other), "a stranger's write went through")
}
