package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/minio/minio-go/v7"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/mesh"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/internal/wire"
)

// GLBContentType is the media type meshes are stored with.
const GLBContentType = "model/gltf-binary"

// meshObjects is what the mesh activities need of the object store.
type meshObjects interface {
	StatObject(ctx context.Context, bucket, object string, opts minio.StatObjectOptions) (minio.ObjectInfo, error)
	GetObject(ctx context.Context, bucket, object string, opts minio.GetObjectOptions) (*minio.Object, error)
	CopyObject(ctx context.Context, dst minio.CopyDestOptions, src minio.CopySrcOptions) (minio.UploadInfo, error)
	RemoveObject(ctx context.Context, bucket, object string, opts minio.RemoveObjectOptions) error
}

// meshStore is what the mesh activities need of PostgreSQL.
type meshStore interface {
	clusterStore
	RecordMeshes(ctx context.Context, ms []store.Mesh) error
}

// Meshes holds the activities of mesh ingests: an uploaded mesh is read
// and validated, moved into the meshes bucket, and its metrics written into
// its compartment's row on the node.
type Meshes struct {
	store   meshStore
	nodes   nodeCaller
	objects meshObjects
	staging string
	bucket  string
	// maxBytes caps a mesh file; limits its vertices and triangles.
	maxBytes int64
	limits   mesh.Limits
}

// MeshesDeps are what the mesh activities need.
type MeshesDeps struct {
	Store   meshStore
	Nodes   nodeCaller
	Objects meshObjects
	// StagingBucket holds the uploads; MeshesBucket the validated meshes.
	StagingBucket, MeshesBucket string
	MaxBytes                    int64
	Limits                      mesh.Limits
}

// NewMeshes returns the mesh activities.
func NewMeshes(d MeshesDeps) *Meshes {
	return &Meshes{store: d.Store, nodes: d.Nodes, objects: d.Objects, staging: d.StagingBucket, bucket: d.MeshesBucket,
		maxBytes: d.MaxBytes, limits: d.Limits}
}

func invalid(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, domain.ErrTypeInvalid, nil)
}

// MeshTarget finds the registered, active node of a mesh's compartment. A
// node that is not routable now makes the ingest wait (a retryable error).
func (a *Meshes) MeshTarget(ctx context.Context, spec domain.MeshSpec) (domain.NodeRef, error) {
	cs, err := a.store.Clusters(ctx, true)
	if err != nil {
		return domain.NodeRef{}, err
	}
	for _, c := range cs {
		if c.Name != spec.Node {
			continue
		}
		if st, _ := health.ParseState(c.Health); !st.Routable() {
			return domain.NodeRef{}, fmt.Errorf("node %s is %s: the ingest waits for it", c.Name, c.Health)
		}
		return nodeRef(c), nil
	}
	return domain.NodeRef{}, invalid(fmt.Sprintf("no registered node %q", spec.Node))
}

// CheckMeshRow asks the node whether the compartment's row exists, so an
// ingest for a cid the node does not have fails before it changes anything.
func (a *Meshes) CheckMeshRow(ctx context.Context, p domain.MeshParams) (domain.MeshWritten, error) {
	req := &wire.MeshMetricsRequest{Table: p.Spec.Table, DatasetId: p.Spec.DatasetID, Cid: p.Spec.CID, CheckOnly: true}
	var resp wire.MeshMetricsResponse
	if err := a.nodes.Call(ctx, p.Node.PeerID, p.Node.Addrs, p2p.MeshMetrics, req, &resp); err != nil {
		return domain.MeshWritten{}, classify(fmt.Errorf("look up %s %s on %s: %w", p.Spec.Table, p.Spec.CID, p.Node.Name, err))
	}
	return domain.MeshWritten{Rows: resp.GetRows()}, nil
}

// ReadMesh reads the uploaded mesh (or, when nothing is staged, the one
// already stored: an ingest run again), within the size cap, and measures
// it. A file over the cap, not a GLB, or not a closed, manifold,
// outward-wound triangle surface within the vertex caps fails for good,
// with the reason.
func (a *Meshes) ReadMesh(ctx context.Context, p domain.MeshParams) (domain.MeshReading, error) {
	rd := domain.MeshReading{Source: domain.MeshStaged}
	bucket, key := a.staging, p.Spec.StagedKey()
	info, err := a.objects.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	if isNoSuchKey(err) {
		rd.Source, bucket, key = domain.MeshStored, a.bucket, p.Spec.Key()
		info, err = a.objects.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	}
	switch {
	case isNoSuchKey(err):
		return rd, invalid(fmt.Sprintf("nothing was uploaded for %s %s of dataset %s on %s: POST the mesh first, then upload the file",
			p.Spec.Table, p.Spec.CID, p.Spec.DatasetID, p.Spec.Node))
	case err != nil:
		return rd, fmt.Errorf("stat %s/%s: %w", bucket, key, err)
	case info.Size > a.maxBytes:
		return rd, invalid(mesh.TooLarge(info.Size, a.maxBytes).Error())
	}
	obj, err := a.objects.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return rd, fmt.Errorf("read %s/%s: %w", bucket, key, err)
	}
	defer func() { _ = obj.Close() }()
	data, err := io.ReadAll(io.LimitReader(obj, a.maxBytes+1))
	switch {
	case err != nil:
		return rd, fmt.Errorf("read %s/%s: %w", bucket, key, err)
	case int64(len(data)) > a.maxBytes:
		return rd, invalid(mesh.TooLarge(int64(len(data)), a.maxBytes).Error())
	case int64(len(data)) != info.Size:
		return rd, fmt.Errorf("read %s/%s: %d bytes of %d", bucket, key, len(data), info.Size)
	}
	sum := sha256.Sum256(data)
	rd.Bytes, rd.ETag, rd.SHA256 = info.Size, info.ETag, hex.EncodeToString(sum[:])
	m, err := mesh.ReadGLB(data, a.limits)
	if err == nil {
		rd.Metrics, err = m.Measure()
	}
	if errors.Is(err, mesh.ErrInvalid) {
		return rd, invalid(fmt.Sprintf("%s: nothing was changed", err))
	}
	if err != nil {
		return rd, err
	}
	rd.Vertices, rd.Triangles = len(m.Vertices), len(m.Triangles)
	activity.GetLogger(ctx).Info("mesh measured", "key", key, "source", rd.Source, "vertices", rd.Vertices, "volume", rd.Metrics.Volume)
	return rd, nil
}

// StoreMesh copies a validated upload into the meshes bucket under the
// compartment's key, as long as it is still the file that was validated.
// A stored mesh stays where it is.
func (a *Meshes) StoreMesh(ctx context.Context, p domain.MeshParams) error {
	if p.Reading.Source != domain.MeshStaged {
		return nil
	}
	_, err := a.objects.CopyObject(ctx,
		minio.CopyDestOptions{Bucket: a.bucket, Object: p.Spec.Key(), ReplaceMetadata: true, ContentType: GLBContentType},
		minio.CopySrcOptions{Bucket: a.staging, Object: p.Spec.StagedKey(), MatchETag: p.Reading.ETag})
	if resp := minio.ToErrorResponse(err); resp.StatusCode == http.StatusPreconditionFailed || resp.Code == "PreconditionFailed" {
		return invalid("the uploaded file changed after it was validated: ingest it again")
	}
	if err != nil {
		return fmt.Errorf("store mesh %s: %w", p.Spec.Key(), err)
	}
	return nil
}

// WriteMeshMetrics writes the measured metrics and the mesh's location
// into the compartment's row on its node (which changes nothing when the
// row holds them already).
func (a *Meshes) WriteMeshMetrics(ctx context.Context, p domain.MeshParams) (domain.MeshWritten, error) {
	m := p.Reading.Metrics
	req := &wire.MeshMetricsRequest{Table: p.Spec.Table, DatasetId: p.Spec.DatasetID, Cid: p.Spec.CID,
		MeshVolume: m.Volume, MeshSurfaceArea: m.SurfaceArea, MeshAreaVolumeRatio: m.AreaVolumeRatio, MeshSphericity: m.Sphericity,
		S3MeshLocation: domain.MeshLocation(a.bucket, p.Spec.Key())}
	var resp wire.MeshMetricsResponse
	stop := heartbeat(ctx, func() any { return p.Node.Name })
	err := a.nodes.Call(ctx, p.Node.PeerID, p.Node.Addrs, p2p.MeshMetrics, req, &resp)
	stop()
	if err != nil {
		return domain.MeshWritten{}, classify(fmt.Errorf("write mesh metrics of %s %s on %s: %w", p.Spec.Table, p.Spec.CID, p.Node.Name, err))
	}
	return domain.MeshWritten{Rows: resp.GetRows(), Changed: resp.GetChanged(), Location: req.GetS3MeshLocation()}, nil
}

// RecordMesh records the mesh in PostgreSQL, where the catalog counts it.
func (a *Meshes) RecordMesh(ctx context.Context, p domain.MeshParams) error {
	return a.store.RecordMeshes(ctx, []store.Mesh{store.MeshOf(p.Spec, p.Reading, p.WorkflowID)})
}

// DeleteStagedMesh removes the upload once it is stored, unless another
// file was uploaded in its place meanwhile.
func (a *Meshes) DeleteStagedMesh(ctx context.Context, p domain.MeshParams) error {
	if p.Reading.Source != domain.MeshStaged {
		return nil
	}
	key := p.Spec.StagedKey()
	info, err := a.objects.StatObject(ctx, a.staging, key, minio.StatObjectOptions{})
	switch {
	case isNoSuchKey(err):
		return nil
	case err != nil:
		return fmt.Errorf("stat staged %s: %w", key, err)
	case info.ETag != p.Reading.ETag:
		return nil
	}
	if err := a.objects.RemoveObject(ctx, a.staging, key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("remove staged %s: %w", key, err)
	}
	return nil
}

func isNoSuchKey(err error) bool {
	return err != nil && minio.ToErrorResponse(err).Code == minio.NoSuchKey
}
