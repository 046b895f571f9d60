package seed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/mesh"
)

// ObjectStore is what the seed needs of S3 to write meshes.
type ObjectStore interface {
	BucketExists(ctx context.Context, bucket string) (bool, error)
	MakeBucket(ctx context.Context, bucket string, opts minio.MakeBucketOptions) error
	PutObject(ctx context.Context, bucket, object string, r io.Reader, size int64, opts minio.PutObjectOptions) (minio.UploadInfo, error)
}

// Mesh is one mesh the seed wrote: its compartment and what it measures.
type Mesh struct {
	Spec    domain.MeshSpec
	Reading domain.MeshReading
}

// uploadConcurrency bounds the seed's uploads at once.
const uploadConcurrency = 8

// meshLevels are the icosphere levels the seeded meshes take turns in (80
// and 320 triangles, 1.6 and 6 KB): their sphericities differ.
var meshLevels = []int{1, 2}

// unitMetrics are the metrics of the unit icosphere of each of meshLevels.
var unitMetrics = func() []domain.MeshMetrics {
	out := make([]domain.MeshMetrics, len(meshLevels))
	for i, l := range meshLevels {
		m, err := mesh.Icosphere(l, 1).Measure()
		if err != nil {
			panic(fmt.Sprintf("the unit icosphere of level %d does not measure: %v", l, err))
		}
		out[i] = m
	}
	return out
}()

// rowMetrics are the metrics of the icosphere of radius r of row k, the
// mesh a row without a stored one stands for: volume scales as r³, area as
// r², sphericity not at all.
func rowMetrics(k int, r float64) domain.MeshMetrics {
	u := unitMetrics[k%len(meshLevels)]
	v, a := u.Volume*r*r*r, u.SurfaceArea*r*r
	return domain.MeshMetrics{Volume: v, SurfaceArea: a, AreaVolumeRatio: a / v, Sphericity: u.Sphericity}
}

// seedMesh is the mesh of one seeded row, to upload before the row is
// inserted.
type seedMesh struct {
	Mesh
	glb []byte
}

// newMesh makes the icosphere of radius r for a row (level by its index k)
// and measures it as the hub's ingest would: from the GLB bytes, whose
// positions are float32.
func newMesh(node string, dataset uuid.UUID, table string, cid uuid.UUID, k int, r float64) (seedMesh, error) {
	glb, err := mesh.EncodeGLB(mesh.Icosphere(meshLevels[k%len(meshLevels)], r))
	if err != nil {
		return seedMesh{}, err
	}
	m, err := mesh.ReadGLB(glb, mesh.DefaultLimits)
	if err != nil {
		return seedMesh{}, fmt.Errorf("read back a seeded mesh: %w", err)
	}
	metrics, err := m.Measure()
	if err != nil {
		return seedMesh{}, fmt.Errorf("measure a seeded mesh: %w", err)
	}
	sum := sha256.Sum256(glb)
	spec := domain.MeshSpec{Node: node, DatasetID: dataset.String(), Table: table, CID: cid.String(), Format: domain.MeshFormatGLB}
	return seedMesh{glb: glb, Mesh: Mesh{Spec: spec, Reading: domain.MeshReading{Source: domain.MeshStored, Bytes: int64(len(glb)),
		SHA256: hex.EncodeToString(sum[:]), Vertices: len(m.Vertices), Triangles: len(m.Triangles), Metrics: metrics}}}, nil
}

// uploadMeshes writes the meshes into the bucket, a few at a time.
func uploadMeshes(ctx context.Context, objects ObjectStore, bucket string, ms []seedMesh) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(uploadConcurrency)
	for _, m := range ms {
		g.Go(func() error {
			_, err := objects.PutObject(ctx, bucket, m.Spec.Key(), bytes.NewReader(m.glb), int64(len(m.glb)),
				minio.PutObjectOptions{ContentType: "model/gltf-binary"})
			if err != nil {
				return fmt.Errorf("upload seeded mesh %s: %w", m.Spec.Key(), err)
			}
			return nil
		})
	}
	return g.Wait()
}

// ensureBucket creates the meshes bucket when it is missing.
func ensureBucket(ctx context.Context, objects ObjectStore, bucket string) error {
	ok, err := objects.BucketExists(ctx, bucket)
	if err != nil {
		return fmt.Errorf("meshes bucket %s: %w", bucket, err)
	}
	if ok {
		return nil
	}
	if err := objects.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		return fmt.Errorf("create meshes bucket %s: %w", bucket, err)
	}
	return nil
}
