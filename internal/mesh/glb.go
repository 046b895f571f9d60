package mesh

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"

	"github.com/qmuntal/gltf"
	"github.com/qmuntal/gltf/modeler"
)

// GLB container constants (glTF 2.0, "GLB File Format Specification").
const (
	glbMagic     = 0x46546C67 // "glTF"
	glbChunkJSON = 0x4E4F534A // "JSON"
	glbChunkBIN  = 0x004E4942 // "BIN\0"
	glbHeader    = 12
	chunkHeader  = 8
	// maxNodeDepth bounds the scene graph walk.
	maxNodeDepth = 64
)

// ReadGLB reads a glTF 2.0 binary file into a welded triangle mesh in world
// space: every triangle primitive of every mesh the default scene places,
// with its node's transform; vertices at the same position become one. It
// refuses, as ErrInvalid with the reason, anything that is not a well-formed
// GLB with its data inside, primitives that are not triangles, and files
// over lim. The container is checked before the glTF library allocates
// anything the file declares.
func ReadGLB(data []byte, lim Limits) (m *Mesh, err error) {
	if lim == (Limits{}) {
		lim = DefaultLimits
	}
	if err := checkContainer(data); err != nil {
		return nil, err
	}
	defer func() {
		// The library promises errors for malformed documents; a panic
		// that slips through is a malformed file all the same.
		if r := recover(); r != nil {
			m, err = nil, invalidf("malformed glTF: %v", r)
		}
	}()
	var doc gltf.Document
	if err := gltf.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return nil, invalidf("not a readable glTF binary: %v", err)
	}
	for i, b := range doc.Buffers {
		if b.Data == nil || (i > 0 && !b.IsEmbeddedResource()) {
			return nil, invalidf("buffer %d is not inside the file (external URIs are not read)", i)
		}
	}
	r := reader{doc: &doc, lim: lim, index: map[[3]float64]uint32{}, mesh: &Mesh{}}
	if err := r.scene(); err != nil {
		return nil, err
	}
	if len(r.mesh.Triangles) == 0 {
		return nil, invalidf("the file has no triangles")
	}
	return r.mesh, nil
}

// checkContainer checks the GLB header and chunks against the file's size,
// and that no buffer declares more bytes than the file holds.
func checkContainer(data []byte) error {
	if len(data) < glbHeader+chunkHeader {
		return invalidf("%d bytes: too short for a glTF binary", len(data))
	}
	le := binary.LittleEndian
	magic, version, length := le.Uint32(data), le.Uint32(data[4:]), le.Uint32(data[8:])
	switch {
	case magic != glbMagic:
		return invalidf("not a glTF binary (.glb): the file does not start with \"glTF\"")
	case version != 2:
		return invalidf("glTF binary version %d: only version 2 is read", version)
	case int64(length) != int64(len(data)):
		return invalidf("the header says %d bytes, the file has %d", length, len(data))
	}
	jsonLen, jsonType := int64(le.Uint32(data[12:])), le.Uint32(data[16:])
	if jsonType != glbChunkJSON || glbHeader+chunkHeader+jsonLen > int64(len(data)) {
		return invalidf("the first chunk is not a JSON chunk inside the file")
	}
	var bin int64
	if rest := int64(len(data)) - glbHeader - chunkHeader - jsonLen; rest >= chunkHeader {
		at := glbHeader + chunkHeader + jsonLen
		bin = int64(le.Uint32(data[at:]))
		if le.Uint32(data[at+4:]) != glbChunkBIN || bin > rest-chunkHeader {
			return invalidf("the second chunk is not a BIN chunk inside the file")
		}
	}
	var head struct {
		Buffers []struct {
			ByteLength int64  `json:"byteLength"`
			URI        string `json:"uri"`
		} `json:"buffers"`
	}
	if err := json.Unmarshal(data[glbHeader+chunkHeader:glbHeader+chunkHeader+jsonLen], &head); err != nil {
		return invalidf("the JSON chunk is not valid JSON: %v", err)
	}
	for i, b := range head.Buffers {
		if b.ByteLength < 0 || b.ByteLength > int64(len(data)) || (i == 0 && b.URI == "" && b.ByteLength > bin) {
			return invalidf("buffer %d declares %d bytes, more than the file holds", i, b.ByteLength)
		}
	}
	return nil
}

// reader gathers a document's triangles into one welded mesh.
type reader struct {
	doc   *gltf.Document
	lim   Limits
	index map[[3]float64]uint32
	mesh  *Mesh
	// vertices counts the vertices read, before welding (each placement
	// of a mesh counts again).
	vertices int
}

// scene walks the default scene (the first, when none is named); a file
// without scenes places each mesh once, untransformed.
func (r *reader) scene() error {
	if len(r.doc.Scenes) == 0 {
		for i := range r.doc.Meshes {
			if err := r.addMesh(i, gltf.DefaultMatrix); err != nil {
				return err
			}
		}
		return nil
	}
	s := 0
	if r.doc.Scene != nil {
		s = *r.doc.Scene
	}
	if s < 0 || s >= len(r.doc.Scenes) {
		return invalidf("the default scene %d does not exist", s)
	}
	for _, n := range r.doc.Scenes[s].Nodes {
		if err := r.node(n, gltf.DefaultMatrix, 0); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) node(i int, parent [16]float64, depth int) error {
	if i < 0 || i >= len(r.doc.Nodes) {
		return invalidf("node %d does not exist", i)
	}
	if depth > maxNodeDepth {
		return invalidf("the node hierarchy is deeper than %d (or has a cycle)", maxNodeDepth)
	}
	n := r.doc.Nodes[i]
	world := mul(parent, local(n))
	if n.Mesh != nil {
		if err := r.addMesh(*n.Mesh, world); err != nil {
			return err
		}
	}
	for _, c := range n.Children {
		if err := r.node(c, world, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) addMesh(i int, world [16]float64) error {
	if i < 0 || i >= len(r.doc.Meshes) {
		return invalidf("mesh %d does not exist", i)
	}
	// A mirroring transform turns the winding around.
	flip := det3(world) < 0
	for p, prim := range r.doc.Meshes[i].Primitives {
		if prim.Mode != gltf.PrimitiveTriangles {
			return invalidf("mesh %d primitive %d draws %s, not triangles", i, p, prim.Mode)
		}
		if err := r.addPrimitive(i, p, prim, world, flip); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) addPrimitive(mi, pi int, prim *gltf.Primitive, world [16]float64, flip bool) error {
	pos, ok := prim.Attributes[gltf.POSITION]
	if !ok || pos < 0 || pos >= len(r.doc.Accessors) {
		return invalidf("mesh %d primitive %d has no POSITION accessor", mi, pi)
	}
	pa := r.doc.Accessors[pos]
	if pa.Count < 0 || r.vertices+pa.Count > r.lim.MaxVertices {
		return invalidf("more than %d vertices (the vertex cap)", r.lim.MaxVertices)
	}
	r.vertices += pa.Count
	points, err := modeler.ReadPosition(r.doc, pa, nil)
	if err != nil {
		return invalidf("mesh %d primitive %d positions: %v", mi, pi, err)
	}
	var idx []uint32
	if prim.Indices == nil {
		idx = make([]uint32, len(points))
		for k := range idx {
			idx[k] = uint32(k)
		}
	} else {
		if *prim.Indices < 0 || *prim.Indices >= len(r.doc.Accessors) {
			return invalidf("mesh %d primitive %d has no indices accessor %d", mi, pi, *prim.Indices)
		}
		ia := r.doc.Accessors[*prim.Indices]
		if ia.Count < 0 || len(r.mesh.Triangles)+ia.Count/3 > r.lim.MaxTriangles {
			return invalidf("more than %d triangles (the triangle cap)", r.lim.MaxTriangles)
		}
		if idx, err = modeler.ReadIndices(r.doc, ia, nil); err != nil {
			return invalidf("mesh %d primitive %d indices: %v", mi, pi, err)
		}
	}
	if len(idx)%3 != 0 {
		return invalidf("mesh %d primitive %d has %d indices, not a multiple of 3", mi, pi, len(idx))
	}
	if len(r.mesh.Triangles)+len(idx)/3 > r.lim.MaxTriangles {
		return invalidf("more than %d triangles (the triangle cap)", r.lim.MaxTriangles)
	}
	welded := make([]uint32, len(points))
	for k, p := range points {
		w := apply(world, p)
		if math.IsNaN(w[0]+w[1]+w[2]) || math.IsInf(w[0]+w[1]+w[2], 0) {
			return invalidf("mesh %d primitive %d vertex %d is not a finite point", mi, pi, k)
		}
		v, ok := r.index[w]
		if !ok {
			v = uint32(len(r.mesh.Vertices))
			r.index[w] = v
			r.mesh.Vertices = append(r.mesh.Vertices, w)
		}
		welded[k] = v
	}
	for k := 0; k < len(idx); k += 3 {
		a, b, c := idx[k], idx[k+1], idx[k+2]
		if int(a) >= len(points) || int(b) >= len(points) || int(c) >= len(points) {
			return invalidf("mesh %d primitive %d index past its %d vertices", mi, pi, len(points))
		}
		t := [3]uint32{welded[a], welded[b], welded[c]}
		if flip {
			t[1], t[2] = t[2], t[1]
		}
		r.mesh.Triangles = append(r.mesh.Triangles, t)
	}
	return nil
}

// local is a node's transform: its matrix, or translation × rotation ×
// scale (column-major, as glTF stores matrices).
func local(n *gltf.Node) [16]float64 {
	if m := n.MatrixOrDefault(); m != gltf.DefaultMatrix {
		return m
	}
	t, q, s := n.TranslationOrDefault(), n.RotationOrDefault(), n.ScaleOrDefault()
	x, y, z, w := q[0], q[1], q[2], q[3]
	r := [9]float64{ // rows of the rotation matrix
		1 - 2*(y*y+z*z), 2 * (x*y - z*w), 2 * (x*z + y*w),
		2 * (x*y + z*w), 1 - 2*(x*x+z*z), 2 * (y*z - x*w),
		2 * (x*z - y*w), 2 * (y*z + x*w), 1 - 2*(x*x+y*y),
	}
	var m [16]float64
	for col := range 3 {
		for row := range 3 {
			m[col*4+row] = r[row*3+col] * s[col]
		}
	}
	m[12], m[13], m[14], m[15] = t[0], t[1], t[2], 1
	return m
}

// mul is a × b, both column-major.
func mul(a, b [16]float64) [16]float64 {
	var out [16]float64
	for col := range 4 {
		for row := range 4 {
			var s float64
			for k := range 4 {
				s += a[k*4+row] * b[col*4+k]
			}
			out[col*4+row] = s
		}
	}
	return out
}

// apply transforms point p by the column-major affine m.
func apply(m [16]float64, p [3]float32) [3]float64 {
	x, y, z := float64(p[0]), float64(p[1]), float64(p[2])
	return [3]float64{
		m[0]*x + m[4]*y + m[8]*z + m[12],
		m[1]*x + m[5]*y + m[9]*z + m[13],
		m[2]*x + m[6]*y + m[10]*z + m[14],
	}
}

// det3 is the determinant of m's linear part.
func det3(m [16]float64) float64 {
	return m[0]*(m[5]*m[10]-m[9]*m[6]) - m[4]*(m[1]*m[10]-m[9]*m[2]) + m[8]*(m[1]*m[6]-m[5]*m[2])
}

// TooLarge is the error of a file over the upload cap, for the callers
// that cap the file before they read it.
func TooLarge(size, limit int64) error {
	return invalidf("the file is %d bytes, over the %d-byte cap (SYNDB_MESH_MAX_UPLOAD_BYTES)", size, limit)
}
