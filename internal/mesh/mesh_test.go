package mesh

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/qmuntal/gltf"
	"github.com/qmuntal/gltf/modeler"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
)

// unitCube is the cube [0,1]³: 8 vertices, 12 triangles wound outwards.
func unitCube() *Mesh {
	return &Mesh{
		Vertices: [][3]float64{{0, 0, 0}, {1, 0, 0}, {1, 1, 0}, {0, 1, 0}, {0, 0, 1}, {1, 0, 1}, {1, 1, 1}, {0, 1, 1}},
		Triangles: [][3]uint32{
			{0, 2, 1}, {0, 3, 2}, // z = 0, facing -z
			{4, 5, 6}, {4, 6, 7}, // z = 1
			{0, 1, 5}, {0, 5, 4}, // y = 0
			{3, 7, 6}, {3, 6, 2}, // y = 1
			{0, 4, 7}, {0, 7, 3}, // x = 0
			{1, 2, 6}, {1, 6, 5}, // x = 1
		},
	}
}

// Hand-computed values of the unit cube: V = 1, A = 6, A/V = 6, and
// sphericity π^(1/3)·6^(2/3)/6 = 1.4645918875615 × 3.3019272488946 / 6.
const cubeSphericity = 0.8059959770082

func TestMeasureClosedMeshes(t *testing.T) {
	t.Parallel()
	// The regular icosahedron inscribed in the unit sphere (the icosphere
	// of level 0): edge a = 4/√(10+2√5), V = 5(3+√5)a³/12, A = 5√3·a².
	a := 4 / math.Sqrt(10+2*math.Sqrt(5))
	icoV, icoA := 5*(3+math.Sqrt(5))*a*a*a/12, 5*math.Sqrt(3)*a*a
	for _, c := range []struct {
		name       string
		m          *Mesh
		v, area, s float64
	}{
		{"unit cube", unitCube(), 1, 6, cubeSphericity},
		{"icosahedron", Icosphere(0, 1), icoV, icoA, math.Cbrt(math.Pi) * math.Pow(6*icoV, 2.0/3.0) / icoA},
		{"icosahedron of radius 3", Icosphere(0, 3), 27 * icoV, 9 * icoA, math.Cbrt(math.Pi) * math.Pow(6*icoV, 2.0/3.0) / icoA},
		{"cube moved far from the origin", moved(unitCube(), 1e6), 1, 6, cubeSphericity},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := c.m.Measure()
			require.NoError(t, err)
			require.InDelta(t, c.v, got.Volume, 1e-9*c.v)
			require.InDelta(t, c.area, got.SurfaceArea, 1e-9*c.area)
			require.InDelta(t, c.area/c.v, got.AreaVolumeRatio, 1e-9*c.area/c.v)
			require.InDelta(t, c.s, got.Sphericity, 1e-9)
		})
	}
}

// TestIcosphereApproachesTheSphere bounds each level's volume and area by
// geometry alone: the icosphere is convex, inscribed in the sphere of radius
// r and contains the ball of radius h, the least distance from the center
// to a face's plane, so (4/3)πh³ ≤ V ≤ (4/3)πr³ and 4πh² ≤ A ≤ 4πr²
// (area is monotone under inclusion of convex bodies). Sphericity is then
// within (h/r)² of 1, and the gap closes as the level rises.
func TestIcosphereApproachesTheSphere(t *testing.T) {
	t.Parallel()
	const r = 2.5
	lastGap := 1.0
	for level := 1; level <= 4; level++ {
		m := Icosphere(level, r)
		require.Len(t, m.Vertices, 10*(1<<(2*level))+2)
		require.Len(t, m.Triangles, 20*(1<<(2*level)))
		h := r
		for _, tr := range m.Triangles {
			a, b, c := m.Vertices[tr[0]], m.Vertices[tr[1]], m.Vertices[tr[2]]
			n := cross(sub(b, a), sub(c, a))
			h = math.Min(h, math.Abs(dot(n, a))/norm(n))
		}
		got, err := m.Measure()
		require.NoError(t, err)
		require.GreaterOrEqual(t, got.Volume, 4*math.Pi*h*h*h/3, "level %d", level)
		require.LessOrEqual(t, got.Volume, 4*math.Pi*r*r*r/3, "level %d", level)
		require.GreaterOrEqual(t, got.SurfaceArea, 4*math.Pi*h*h, "level %d", level)
		require.LessOrEqual(t, got.SurfaceArea, 4*math.Pi*r*r, "level %d", level)
		require.LessOrEqual(t, got.Sphericity, 1.0)
		gap := 1 - got.Sphericity
		require.Less(t, gap, lastGap, "level %d is no rounder than level %d", level, level-1)
		lastGap = gap
	}
	require.Less(t, lastGap, 1e-3)
}

func TestMeasureRefusesMeshesWithoutAVolume(t *testing.T) {
	t.Parallel()
	open := unitCube()
	open.Triangles = open.Triangles[1:]
	// Two tetrahedra on one edge (0–1): four triangles share it.
	twoTetra := &Mesh{
		Vertices: [][3]float64{{0, 0, 0}, {1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {0, -1, 0}, {0, 0, -1}},
		Triangles: [][3]uint32{
			{0, 2, 1}, {0, 1, 3}, {1, 2, 3}, {2, 0, 3},
			{0, 4, 1}, {0, 1, 5}, {1, 4, 5}, {4, 0, 5},
		},
	}
	flipped := unitCube()
	flipped.Triangles[3] = [3]uint32{4, 7, 6}
	inverted := unitCube()
	for i, tr := range inverted.Triangles {
		inverted.Triangles[i] = [3]uint32{tr[0], tr[2], tr[1]}
	}
	degenerate := unitCube()
	degenerate.Triangles[0] = [3]uint32{0, 0, 1}
	// A square, both sides (split along different diagonals): closed and
	// consistently oriented, with no volume.
	flat := &Mesh{
		Vertices:  [][3]float64{{0, 0, 0}, {1, 0, 0}, {1, 1, 0}, {0, 1, 0}},
		Triangles: [][3]uint32{{0, 1, 2}, {0, 2, 3}, {0, 3, 1}, {1, 3, 2}},
	}
	for _, c := range []struct {
		name, want string
		m          *Mesh
	}{
		{"open", "the surface is open: 3 edges belong to one triangle only", open},
		{"two tetrahedra on one edge", "not manifold: 1 edges are shared by more than two triangles", twoTetra},
		{"one triangle flipped", "not consistently oriented", flipped},
		{"inverted", "wound inwards (inverted normals)", inverted},
		{"degenerate triangle", "triangle 0 is degenerate", degenerate},
		{"flat", "encloses no volume", flat},
		{"too few triangles", "a closed surface needs at least 4", &Mesh{Vertices: flat.Vertices, Triangles: flat.Triangles[:2]}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := c.m.Measure()
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, c.want)
		})
	}
}

func moved(m *Mesh, by float64) *Mesh {
	for i, v := range m.Vertices {
		m.Vertices[i] = [3]float64{v[0] + by, v[1] + by, v[2] + by}
	}
	return m
}

func TestGLBRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		m    *Mesh
		want domain.MeshMetrics
	}{
		{"unit cube", unitCube(), domain.MeshMetrics{Volume: 1, SurfaceArea: 6, AreaVolumeRatio: 6, Sphericity: cubeSphericity}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			raw, err := EncodeGLB(c.m)
			require.NoError(t, err)
			got, err := ReadGLB(raw, Limits{})
			require.NoError(t, err)
			require.Len(t, got.Vertices, len(c.m.Vertices))
			mt, err := got.Measure()
			require.NoError(t, err)
			require.InDelta(t, c.want.Volume, mt.Volume, 1e-12)
			require.InDelta(t, c.want.SurfaceArea, mt.SurfaceArea, 1e-12)
			require.InDelta(t, c.want.Sphericity, mt.Sphericity, 1e-12)
		})
	}
}

func TestReadGLBRefusesBadFiles(t *testing.T) {
	t.Parallel()
	ico, err := EncodeGLB(Icosphere(2, 1)) // 162 vertices, 320 triangles
	require.NoError(t, err)
	lying := append([]byte(nil), ico...)
	// The BIN chunk's length, then the JSON's "byteLength" are where the
	// library would allocate: claim 4 GB in the chunk header.
	jsonLen := binary.LittleEndian.Uint32(lying[12:])
	binary.LittleEndian.PutUint32(lying[20+jsonLen:], 0xFFFFFFF0)
	for _, c := range []struct {
		name, want string
		raw        []byte
		lim        Limits
	}{
		{"not a glb", "does not start with \"glTF\"", []byte(`{"asset": {"version": "2.0"}, "padding": "0123456789"}`), Limits{}},
		{"too short", "too short for a glTF binary", ico[:10], Limits{}},
		{"truncated", "the header says", ico[:len(ico)-40], Limits{}},
		{"a chunk past the end", "not a BIN chunk inside the file", lying, Limits{}},
		{"over the vertex cap", "more than 100 vertices (the vertex cap)", ico, Limits{MaxVertices: 100, MaxTriangles: 1000}},
		{"over the triangle cap", "more than 300 triangles (the triangle cap)", ico, Limits{MaxVertices: 1000, MaxTriangles: 300}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ReadGLB(c.raw, c.lim)
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, c.want)
		})
	}
}

// splitCube is the unit cube as exporters write a flat-shaded one: each
// face its own four vertices (24 in all), so only welding by position joins
// the faces into a closed surface.
func splitCube() ([][3]float32, []uint32) {
	c := unitCube()
	var pos [][3]float32
	var idx []uint32
	for _, tr := range c.Triangles {
		for _, v := range tr {
			p := c.Vertices[v]
			pos = append(pos, [3]float32{float32(p[0]), float32(p[1]), float32(p[2])})
			idx = append(idx, uint32(len(pos)-1))
		}
	}
	return pos, idx
}

// TestReadGLBScene places a split cube under nodes: scaled by 2 (V = 8,
// A = 24), scaled by (−2, 2, 2) (a mirror: the winding turns, and the
// volume stays positive), and through a parent that translates it.
func TestReadGLBScene(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		nodes []*gltf.Node
		mode  gltf.PrimitiveMode
		want  string
	}{
		{name: "scaled", nodes: []*gltf.Node{{Mesh: gltf.Index(0), Scale: [3]float64{2, 2, 2}}}},
		{name: "mirrored", nodes: []*gltf.Node{{Mesh: gltf.Index(0), Scale: [3]float64{-2, 2, 2}}}},
		{name: "child of a translated node", nodes: []*gltf.Node{
			{Children: []int{1}, Translation: [3]float64{5, 0, 0}}, {Mesh: gltf.Index(0), Scale: [3]float64{2, 2, 2}}}},
		{name: "points", nodes: []*gltf.Node{{Mesh: gltf.Index(0)}}, mode: gltf.PrimitivePoints, want: "draws POINTS, not triangles"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			doc := gltf.NewDocument()
			pos, idx := splitCube()
			doc.Meshes = []*gltf.Mesh{{Primitives: []*gltf.Primitive{{
				Indices:    gltf.Index(modeler.WriteIndices(doc, idx)),
				Attributes: gltf.PrimitiveAttributes{gltf.POSITION: modeler.WritePosition(doc, pos)},
				Mode:       c.mode,
			}}}}
			for _, n := range c.nodes {
				if n.Scale == [3]float64{} {
					n.Scale = [3]float64{1, 1, 1}
				}
				n.Rotation, n.Matrix = [4]float64{0, 0, 0, 1}, gltf.DefaultMatrix
			}
			doc.Nodes = c.nodes
			doc.Scenes[0].Nodes = []int{0}
			var buf bytes.Buffer
			require.NoError(t, gltf.NewEncoder(&buf).Encode(doc))
			m, err := ReadGLB(buf.Bytes(), Limits{})
			if c.want != "" {
				require.ErrorContains(t, err, c.want)
				return
			}
			require.NoError(t, err)
			require.Len(t, m.Vertices, 8)
			got, err := m.Measure()
			require.NoError(t, err)
			require.InDelta(t, 8, got.Volume, 1e-12)
			require.InDelta(t, 24, got.SurfaceArea, 1e-12)
		})
	}
}
