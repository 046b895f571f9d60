package domain

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"
)

// MeshFormatGLB is glTF 2.0 binary, the one mesh format the hub reads.
const MeshFormatGLB = "glb"

// MeshFormats are the mesh formats an upload may be in. PLY and STL are
// not among them: no maintained Go library reads them.
var MeshFormats = []string{MeshFormatGLB}

// MeshColumns are the columns a compartment table needs to hold a mesh:
// the four metrics computed from it and its location.
var MeshColumns = []string{"mesh_volume", "mesh_surface_area", "mesh_area_volume_ratio", "mesh_sphericity", "s3_mesh_location"}

// Where an ingest read a mesh from (MeshReading.Source).
const (
	// MeshStaged: the ingest read the file just uploaded.
	MeshStaged = "staged"
	// MeshStored: nothing was staged; the ingest read the mesh already
	// stored (an ingest run again).
	MeshStored = "stored"
)

// MeshSpec names one compartment's mesh: the row (node, dataset, table,
// cid) and the file's format.
type MeshSpec struct {
	Node      string `json:"node"`
	DatasetID string `json:"dataset_id"`
	Table     string `json:"table"`
	CID       string `json:"cid"`
	Format    string `json:"format"`
}

var meshTableRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// ErrMeshFormat marks a format the hub does not read.
var ErrMeshFormat = errors.New("unsupported mesh format")

// Validate checks the spec's shape: a node name, UUIDs, a table name and a
// supported format. Whether the node, dataset and table exist is for the
// caller to check.
func (s *MeshSpec) Validate() error {
	switch {
	case s.Node == "" || len(s.Node) > 63:
		return fmt.Errorf("node %.70q is not a node name", s.Node)
	case !meshTableRe.MatchString(s.Table):
		return fmt.Errorf("table %.70q is not a table name", s.Table)
	}
	if _, err := uuid.Parse(s.DatasetID); err != nil {
		return fmt.Errorf("dataset ID %.60q is not a UUID", s.DatasetID)
	}
	if _, err := uuid.Parse(s.CID); err != nil {
		return fmt.Errorf("cid %.60q is not a UUID", s.CID)
	}
	if !strings.EqualFold(s.Format, MeshFormatGLB) {
		return fmt.Errorf("%w %.20q: supported formats are %s", ErrMeshFormat, s.Format, strings.Join(MeshFormats, ", "))
	}
	return nil
}

// Normalize puts the spec's IDs and format in their canonical form
// (lowercase UUIDs and format), so keys built from it are unique.
func (s MeshSpec) Normalize() MeshSpec {
	if id, err := uuid.Parse(s.DatasetID); err == nil {
		s.DatasetID = id.String()
	}
	if id, err := uuid.Parse(s.CID); err == nil {
		s.CID = id.String()
	}
	s.Format = strings.ToLower(s.Format)
	return s
}

// Key is the mesh's object key in the meshes bucket:
// {node}/{dataset_id}/{table}/{cid}.{format}.
func (s MeshSpec) Key() string {
	return fmt.Sprintf("%s/%s/%s/%s.%s", s.Node, s.DatasetID, s.Table, s.CID, s.Format)
}

// StagedKey is where the mesh is uploaded, in the staging bucket, until an
// ingest has validated it.
func (s MeshSpec) StagedKey() string { return "meshes/" + s.Key() }

// DatasetPrefix is the prefix of every mesh of a dataset in the meshes
// bucket.
func DatasetPrefix(node, datasetID string) string { return node + "/" + datasetID + "/" }

// MeshLocation is the s3_mesh_location of a mesh stored under key.
func MeshLocation(bucket, key string) string { return "s3://" + bucket + "/" + key }

// MeshMetrics are what a compartment's surface mesh measures.
type MeshMetrics struct {
	Volume      float64 `json:"mesh_volume"`
	SurfaceArea float64 `json:"mesh_surface_area"`
	// AreaVolumeRatio is SurfaceArea / Volume.
	AreaVolumeRatio float64 `json:"mesh_area_volume_ratio"`
	// Sphericity is π^(1/3)·(6V)^(2/3) / A: 1 for a sphere, less otherwise.
	Sphericity float64 `json:"mesh_sphericity"`
}

// MeshReading is what reading and validating a mesh file found.
type MeshReading struct {
	// Source is MeshStaged or MeshStored.
	Source string `json:"source"`
	Bytes  int64  `json:"bytes"`
	// ETag is the object's, so later steps act on the very file validated.
	ETag      string      `json:"etag"`
	SHA256    string      `json:"sha256"`
	Vertices  int         `json:"vertices"`
	Triangles int         `json:"triangles"`
	Metrics   MeshMetrics `json:"metrics"`
}

// MeshParams is the input of the mesh activities after the first.
type MeshParams struct {
	Spec    MeshSpec    `json:"spec"`
	Node    NodeRef     `json:"node"`
	Reading MeshReading `json:"reading"`
	// WorkflowID is the ingest's, recorded with the mesh.
	WorkflowID string `json:"workflow_id,omitempty"`
}

// MeshWritten is what writing a mesh's metrics into its row did.
type MeshWritten struct {
	// Rows is the number of rows with the mesh's dataset and cid.
	Rows uint64 `json:"rows"`
	// Changed is false when the row already held these values.
	Changed bool `json:"changed"`
	// Location is the s3_mesh_location written.
	Location string `json:"location"`
}

// MeshIngestResult is the output (and, while running, the progress) of a
// mesh ingest.
type MeshIngestResult struct {
	Spec MeshSpec `json:"spec"`
	// Step is what the ingest is doing, or "done".
	Step    string       `json:"step"`
	Reading *MeshReading `json:"reading,omitempty"`
	Written *MeshWritten `json:"written,omitempty"`
}

// Activity names of mesh ingests.
const (
	MeshTargetName       = "MeshTarget"
	CheckMeshRowName     = "CheckMeshRow"
	ReadMeshName         = "ReadMesh"
	StoreMeshName        = "StoreMesh"
	WriteMeshMetricsName = "WriteMeshMetrics"
	RecordMeshName       = "RecordMesh"
	DeleteStagedMeshName = "DeleteStagedMesh"
)
