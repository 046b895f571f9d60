package config

import "fmt"

// Mesh bounds what a mesh upload may be: the API signs uploads with
// MaxUploadBytes, and the worker checks the staged object's size again and
// refuses a file over MaxVertices or MaxTriangles before it reads them.
type Mesh struct {
	// MaxUploadBytes caps a mesh file: the pre-signed POST policy's
	// content-length range, checked again on the staged object.
	MaxUploadBytes int64 `env:"SYNDB_MESH_MAX_UPLOAD_BYTES" envDefault:"67108864"`
	// MaxVertices caps the vertices a mesh file declares.
	MaxVertices int `env:"SYNDB_MESH_MAX_VERTICES" envDefault:"1000000"`
	// MaxTriangles caps its triangles.
	MaxTriangles int `env:"SYNDB_MESH_MAX_TRIANGLES" envDefault:"4000000"`
}

// Validate checks the mesh caps.
func (m *Mesh) Validate() error {
	switch {
	case m.MaxUploadBytes < 1<<10 || m.MaxUploadBytes > 4<<30:
		return fmt.Errorf("SYNDB_MESH_MAX_UPLOAD_BYTES: %d is outside 1024..%d", m.MaxUploadBytes, int64(4<<30))
	case m.MaxVertices < 4 || m.MaxVertices > 100_000_000:
		return fmt.Errorf("SYNDB_MESH_MAX_VERTICES: %d is outside 4..100000000", m.MaxVertices)
	case m.MaxTriangles < 4 || m.MaxTriangles > 400_000_000:
		return fmt.Errorf("SYNDB_MESH_MAX_TRIANGLES: %d is outside 4..400000000", m.MaxTriangles)
	}
	return nil
}
