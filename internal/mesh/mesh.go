// Package mesh reads compartment surface meshes (glTF binary) and measures
// them: it checks that a mesh encloses a volume (closed, every edge shared
// by exactly two triangles wound in opposite directions, positive signed
// volume) and computes the metrics SynDB keeps per compartment. It does no
// I/O: callers hand it bytes.
package mesh

import (
	"errors"
	"fmt"
	"math"

	"github.com/syndb/federation/internal/domain"
)

// ErrInvalid marks a mesh that cannot be measured; the error says why.
var ErrInvalid = errors.New("invalid mesh")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Limits bound what reading a mesh may cost.
type Limits struct {
	// MaxVertices caps the vertices a file may declare (before welding).
	MaxVertices int
	// MaxTriangles caps its triangles.
	MaxTriangles int
}

// DefaultLimits are the caps used when none are given.
var DefaultLimits = Limits{MaxVertices: 1_000_000, MaxTriangles: 4_000_000}

// Mesh is a triangle mesh: vertex positions and triangles as indices into
// them, one vertex per distinct position.
type Mesh struct {
	Vertices  [][3]float64
	Triangles [][3]uint32
}

// Measure checks that m encloses a volume and returns its metrics. The
// surface must be closed and manifold (every edge belongs to exactly two
// triangles), consistently oriented (the two run the edge in opposite
// directions) and wound outwards (positive signed volume).
func (m *Mesh) Measure() (domain.MeshMetrics, error) {
	if len(m.Triangles) < 4 {
		return domain.MeshMetrics{}, invalidf("%d triangles: a closed surface needs at least 4", len(m.Triangles))
	}
	if err := m.checkTopology(); err != nil {
		return domain.MeshMetrics{}, err
	}
	vol, area := m.volumeArea()
	switch {
	case math.IsNaN(vol) || math.IsInf(vol, 0) || math.IsInf(area, 0):
		return domain.MeshMetrics{}, invalidf("the volume or area overflows float64")
	case vol < 0:
		return domain.MeshMetrics{}, invalidf("the signed volume is negative (%g): the triangles are wound inwards (inverted normals)", vol)
	case !(vol > 0) || vol < 1e-12*math.Pow(area, 1.5):
		return domain.MeshMetrics{}, invalidf("the surface encloses no volume (volume %g for area %g)", vol, area)
	}
	return domain.MeshMetrics{
		Volume:          vol,
		SurfaceArea:     area,
		AreaVolumeRatio: area / vol,
		Sphericity:      math.Cbrt(math.Pi) * math.Pow(6*vol, 2.0/3.0) / area,
	}, nil
}

// checkTopology checks every triangle has three distinct vertices and every
// edge is shared by exactly two triangles running it in opposite directions.
func (m *Mesh) checkTopology() error {
	n := uint32(len(m.Vertices))
	// directed counts each directed edge (a→b) once per triangle using it.
	directed := make(map[uint64]uint32, 3*len(m.Triangles))
	for i, t := range m.Triangles {
		if t[0] >= n || t[1] >= n || t[2] >= n {
			return invalidf("triangle %d uses a vertex past the %d vertices", i, n)
		}
		if t[0] == t[1] || t[1] == t[2] || t[0] == t[2] {
			return invalidf("triangle %d is degenerate: two of its corners are the same point", i)
		}
		for k := range 3 {
			directed[edgeKey(t[k], t[(k+1)%3])]++
		}
	}
	var open, shared, flipped int
	for e, c := range directed {
		a, b := uint32(e>>32), uint32(e)
		back := directed[edgeKey(b, a)]
		switch {
		case c+back == 1:
			open++
		case c+back > 2:
			shared++
		case c == 2:
			flipped++
		}
	}
	switch {
	case open > 0:
		return invalidf("the surface is open: %d edges belong to one triangle only", open)
	case shared > 0:
		return invalidf("the surface is not manifold: %d edges are shared by more than two triangles", (shared+1)/2)
	case flipped > 0:
		return invalidf("the triangles are not consistently oriented: %d edges are run the same way by both their triangles", flipped)
	}
	return nil
}

func edgeKey(a, b uint32) uint64 { return uint64(a)<<32 | uint64(b) }

// volumeArea sums the signed volumes of the tetrahedra each triangle makes
// with a reference point (the divergence theorem) and the triangles' areas.
// The reference is the first vertex, which keeps the terms small for a mesh
// far from the origin.
func (m *Mesh) volumeArea() (vol, area float64) {
	o := m.Vertices[0]
	for _, t := range m.Triangles {
		a, b, c := sub(m.Vertices[t[0]], o), sub(m.Vertices[t[1]], o), sub(m.Vertices[t[2]], o)
		vol += dot(a, cross(b, c))
		area += norm(cross(sub(b, a), sub(c, a)))
	}
	return vol / 6, area / 2
}

func sub(a, b [3]float64) [3]float64 { return [3]float64{a[0] - b[0], a[1] - b[1], a[2] - b[2]} }

func dot(a, b [3]float64) float64 { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] }

func cross(a, b [3]float64) [3]float64 {
	return [3]float64{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}

func norm(a [3]float64) float64 { return math.Sqrt(dot(a, a)) }
