package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/syndb/federation/internal/domain"
)

// Mesh is one compartment's mesh the hub holds.
type Mesh struct {
	Node      string             `json:"node"`
	DatasetID uuid.UUID          `json:"dataset_id"`
	Table     string             `json:"table"`
	CID       uuid.UUID          `json:"cid"`
	Object    string             `json:"object"`
	Format    string             `json:"format"`
	Bytes     int64              `json:"bytes"`
	SHA256    string             `json:"sha256"`
	Vertices  int                `json:"vertices"`
	Triangles int                `json:"triangles"`
	Metrics   domain.MeshMetrics `json:"metrics"`
	// WorkflowID is the ingest that recorded it ("" for the seed's).
	WorkflowID string    `json:"workflow_id,omitempty"`
	IngestedAt time.Time `json:"ingested_at"`
}

// MeshOf is the record of the mesh of spec, read as r by workflowID ("" for
// the seed).
func MeshOf(spec domain.MeshSpec, r domain.MeshReading, workflowID string) Mesh {
	return Mesh{Node: spec.Node, DatasetID: uuid.MustParse(spec.DatasetID), Table: spec.Table, CID: uuid.MustParse(spec.CID),
		Object: spec.Key(), Format: spec.Format, Bytes: r.Bytes, SHA256: r.SHA256, Vertices: r.Vertices, Triangles: r.Triangles,
		Metrics: r.Metrics, WorkflowID: workflowID}
}

// RecordMeshes records meshes, each replacing what was recorded for its
// compartment: recording the same mesh twice leaves one row.
func (s *Store) RecordMeshes(ctx context.Context, ms []Mesh) error {
	batch := &pgx.Batch{}
	for _, m := range ms {
		batch.Queue(`INSERT INTO meshes (cluster, dataset_id, table_name, cid, object, format, bytes, sha256, vertices, triangles,
				volume, surface_area, area_volume_ratio, sphericity, workflow_id, ingested_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, now())
			ON CONFLICT (cluster, dataset_id, table_name, cid) DO UPDATE SET object = EXCLUDED.object, format = EXCLUDED.format,
				bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256, vertices = EXCLUDED.vertices, triangles = EXCLUDED.triangles,
				volume = EXCLUDED.volume, surface_area = EXCLUDED.surface_area, area_volume_ratio = EXCLUDED.area_volume_ratio,
				sphericity = EXCLUDED.sphericity, workflow_id = EXCLUDED.workflow_id, ingested_at = now()`,
			m.Node, m.DatasetID, m.Table, m.CID, m.Object, m.Format, m.Bytes, m.SHA256, m.Vertices, m.Triangles,
			m.Metrics.Volume, m.Metrics.SurfaceArea, m.Metrics.AreaVolumeRatio, m.Metrics.Sphericity, m.WorkflowID)
	}
	if batch.Len() == 0 {
		return nil
	}
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("record %d meshes: %w", len(ms), err)
	}
	return nil
}

// Mesh returns the mesh recorded for a compartment, or ErrNotFound.
func (s *Store) Mesh(ctx context.Context, node string, dataset uuid.UUID, table string, cid uuid.UUID) (Mesh, error) {
	m := Mesh{Node: node, DatasetID: dataset, Table: table, CID: cid}
	err := s.pool.QueryRow(ctx, `SELECT object, format, bytes, sha256, vertices, triangles, volume, surface_area,
			area_volume_ratio, sphericity, workflow_id, ingested_at
		FROM meshes WHERE cluster = $1 AND dataset_id = $2 AND table_name = $3 AND cid = $4`, node, dataset, table, cid).
		Scan(&m.Object, &m.Format, &m.Bytes, &m.SHA256, &m.Vertices, &m.Triangles, &m.Metrics.Volume, &m.Metrics.SurfaceArea,
			&m.Metrics.AreaVolumeRatio, &m.Metrics.Sphericity, &m.WorkflowID, &m.IngestedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Mesh{}, fmt.Errorf("mesh of %s %s in %s/%s: %w", table, cid, node, dataset, domain.ErrNotFound)
	}
	if err != nil {
		return Mesh{}, fmt.Errorf("read mesh of %s %s in %s/%s: %w", table, cid, node, dataset, err)
	}
	m.IngestedAt = m.IngestedAt.UTC()
	return m, nil
}
