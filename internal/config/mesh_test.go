package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMesh(t *testing.T) {
	c, err := Load[Mesh]()
	require.NoError(t, err)
	require.Equal(t, Mesh{MaxUploadBytes: 64 << 20, MaxVertices: 1_000_000, MaxTriangles: 4_000_000}, c)

	t.Setenv("SYNDB_MESH_MAX_UPLOAD_BYTES", "4096")
	c, err = Load[Mesh]()
	require.NoError(t, err)
	require.Equal(t, int64(4096), c.MaxUploadBytes)

	for env, val := range map[string]string{
		"SYNDB_MESH_MAX_UPLOAD_BYTES": "10",
		"SYNDB_MESH_MAX_VERTICES":     "3",
		"SYNDB_MESH_MAX_TRIANGLES":    "0",
	} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			_, err := Load[Mesh]()
			require.ErrorContains(t, err, env)
		})
	}
}
