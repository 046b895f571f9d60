package e2e

import (
	"io"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/devstack/fleet"
	"github.com/syndb/federation/internal/mesh"
	"github.com/syndb/federation/internal/seed"
)

// TestSeededMeshes: every s3_mesh_location the seed wrote, on every node and
// in every compartment table, is an object of the meshes bucket, and the
// mesh metrics of its row are what that object measures.
func TestSeededMeshes(t *testing.T) {
	s3 := s3Client(t)
	for _, node := range []string{"lab-a", "lab-b"} {
		conn := nodeConn(t, node)
		located := 0
		for _, table := range seed.Compartments {
			rows, err := conn.Query(t.Context(), `SELECT assumeNotNull(s3_mesh_location), assumeNotNull(mesh_volume),
				assumeNotNull(mesh_surface_area), assumeNotNull(mesh_area_volume_ratio), assumeNotNull(mesh_sphericity)
				FROM `+table+` WHERE isNotNull(s3_mesh_location)`)
			require.NoError(t, err)
			for rows.Next() {
				var loc string
				var want [4]float64
				require.NoError(t, rows.Scan(&loc, &want[0], &want[1], &want[2], &want[3]))
				key, ok := strings.CutPrefix(loc, "s3://"+fleet.MeshesBucket+"/")
				require.True(t, ok, "%s: %s is not in the meshes bucket", table, loc)
				require.True(t, strings.HasPrefix(key, node+"/"), "%s: %s is not under %s/", table, loc, node)
				obj, err := s3.GetObject(t.Context(), fleet.MeshesBucket, key, minio.GetObjectOptions{})
				require.NoError(t, err)
				raw, err := io.ReadAll(obj)
				_ = obj.Close()
				require.NoError(t, err, "%s: %s does not resolve", table, loc)
				m, err := mesh.ReadGLB(raw, mesh.Limits{})
				require.NoError(t, err)
				got, err := m.Measure()
				require.NoError(t, err)
				require.Equal(t, want, [4]float64{got.Volume, got.SurfaceArea, got.AreaVolumeRatio, got.Sphericity}, "%s: %s", table, loc)
				located++
			}
			require.NoError(t, rows.Err())
			_ = rows.Close()
		}
		// The test federation seeds 2 datasets with 5 meshes per table.
		require.Equal(t, 2*len(seed.Compartments)*5, located, node)
	}
}
