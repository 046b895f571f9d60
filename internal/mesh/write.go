package mesh

import (
	"bytes"
	"fmt"
	"math"

	"github.com/qmuntal/gltf"
	"github.com/qmuntal/gltf/modeler"
)

// EncodeGLB writes m as a glTF 2.0 binary: one mesh of one triangle
// primitive (float32 positions, uint32 indices) placed once by the scene.
func EncodeGLB(m *Mesh) ([]byte, error) {
	doc := gltf.NewDocument()
	doc.Asset.Generator = "syndb"
	pos := make([][3]float32, len(m.Vertices))
	for i, v := range m.Vertices {
		pos[i] = [3]float32{float32(v[0]), float32(v[1]), float32(v[2])}
	}
	idx := make([]uint32, 0, 3*len(m.Triangles))
	for _, t := range m.Triangles {
		idx = append(idx, t[0], t[1], t[2])
	}
	doc.Meshes = []*gltf.Mesh{{Name: "surface", Primitives: []*gltf.Primitive{{
		Indices:    gltf.Index(modeler.WriteIndices(doc, idx)),
		Attributes: gltf.PrimitiveAttributes{gltf.POSITION: modeler.WritePosition(doc, pos)},
		Mode:       gltf.PrimitiveTriangles,
	}}}}
	doc.Nodes = []*gltf.Node{{Name: "surface", Mesh: gltf.Index(0)}}
	doc.Scenes[0].Nodes = []int{0}
	var out bytes.Buffer
	if err := gltf.NewEncoder(&out).Encode(doc); err != nil {
		return nil, fmt.Errorf("encode glb: %w", err)
	}
	return out.Bytes(), nil
}

// Icosphere is the sphere of radius r approximated by an icosahedron whose
// triangles are split in four level times, every new vertex pushed out to
// the sphere: 10·4^level + 2 vertices, 20·4^level triangles, wound
// outwards.
func Icosphere(level int, r float64) *Mesh {
	p := (1 + math.Sqrt(5)) / 2
	m := &Mesh{}
	for _, v := range [][3]float64{
		{-1, p, 0}, {1, p, 0}, {-1, -p, 0}, {1, -p, 0},
		{0, -1, p}, {0, 1, p}, {0, -1, -p}, {0, 1, -p},
		{p, 0, -1}, {p, 0, 1}, {-p, 0, -1}, {-p, 0, 1},
	} {
		m.Vertices = append(m.Vertices, onSphere(v, r))
	}
	m.Triangles = [][3]uint32{
		{0, 11, 5}, {0, 5, 1}, {0, 1, 7}, {0, 7, 10}, {0, 10, 11},
		{1, 5, 9}, {5, 11, 4}, {11, 10, 2}, {10, 7, 6}, {7, 1, 8},
		{3, 9, 4}, {3, 4, 2}, {3, 2, 6}, {3, 6, 8}, {3, 8, 9},
		{4, 9, 5}, {2, 4, 11}, {6, 2, 10}, {8, 6, 7}, {9, 8, 1},
	}
	for range level {
		mid := map[[2]uint32]uint32{}
		middle := func(a, b uint32) uint32 {
			k := [2]uint32{min(a, b), max(a, b)}
			if v, ok := mid[k]; ok {
				return v
			}
			va, vb := m.Vertices[a], m.Vertices[b]
			v := uint32(len(m.Vertices))
			m.Vertices = append(m.Vertices, onSphere([3]float64{va[0] + vb[0], va[1] + vb[1], va[2] + vb[2]}, r))
			mid[k] = v
			return v
		}
		next := make([][3]uint32, 0, 4*len(m.Triangles))
		for _, t := range m.Triangles {
			ab, bc, ca := middle(t[0], t[1]), middle(t[1], t[2]), middle(t[2], t[0])
			next = append(next, [3]uint32{t[0], ab, ca}, [3]uint32{t[1], bc, ab}, [3]uint32{t[2], ca, bc}, [3]uint32{ab, bc, ca})
		}
		m.Triangles = next
	}
	return m
}

func onSphere(v [3]float64, r float64) [3]float64 {
	n := norm(v)
	return [3]float64{v[0] / n * r, v[1] / n * r, v[2] / n * r}
}
