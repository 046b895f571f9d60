package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/syndb/federation/internal/domain"
)

// OntologyTarget is the ontology version the latest ontology sync pushed
// to the fleet (Version 0: no sync yet).
type OntologyTarget struct {
	Version    int       `json:"version"`
	Checksum   string    `json:"checksum,omitempty"`
	WorkflowID string    `json:"workflow_id,omitempty"`
	UpdatedAt  time.Time `json:"updated_at,omitzero"`
}

// SetOntologyTarget records the ontology version the fleet was last asked
// to hold, by the sync workflowID.
func (s *Store) SetOntologyTarget(ctx context.Context, version int, checksum, workflowID string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO ontology_target (singleton, version, checksum, workflow_id) VALUES (true, $1, $2, $3)
		ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, checksum = EXCLUDED.checksum,
			workflow_id = EXCLUDED.workflow_id, updated_at = now()`, version, checksum, workflowID)
	if err != nil {
		return fmt.Errorf("record ontology target %d: %w", version, err)
	}
	return nil
}

// OntologyTarget returns the fleet's ontology target, Version 0 when no
// ontology sync has run yet.
func (s *Store) OntologyTarget(ctx context.Context) (OntologyTarget, error) {
	var t OntologyTarget
	err := s.pool.QueryRow(ctx, `SELECT version, checksum, workflow_id, updated_at FROM ontology_target`).
		Scan(&t.Version, &t.Checksum, &t.WorkflowID, &t.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return OntologyTarget{}, nil
	}
	if err != nil {
		return OntologyTarget{}, fmt.Errorf("read ontology target: %w", err)
	}
	t.UpdatedAt = t.UpdatedAt.UTC()
	return t, nil
}

// RecordOntologyVersion stores the ontology version a node confirmed
// holding. Versions only go forward: a late, retried write of an older
// version changes nothing.
func (s *Store) RecordOntologyVersion(ctx context.Context, cluster string, version int, checksum, workflowID string) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM clusters WHERE name = $1)`, cluster).Scan(&exists); err != nil {
		return fmt.Errorf("record ontology version of %q: %w", cluster, err)
	}
	if !exists {
		return fmt.Errorf("record ontology version of %q: %w", cluster, domain.ErrNotFound)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO cluster_ontology (cluster, version, checksum, workflow_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (cluster) DO UPDATE SET version = EXCLUDED.version, checksum = EXCLUDED.checksum,
			workflow_id = EXCLUDED.workflow_id, synced_at = now()
		WHERE cluster_ontology.version <= EXCLUDED.version`, cluster, version, checksum, workflowID)
	if err != nil {
		return fmt.Errorf("record ontology version of %q: %w", cluster, err)
	}
	return nil
}

// ClusterOntology is the ontology version a node holds, as last confirmed.
type ClusterOntology struct {
	Cluster    string     `json:"name"`
	Version    int        `json:"version"`
	Checksum   string     `json:"checksum,omitempty"`
	WorkflowID string     `json:"workflow_id,omitempty"`
	SyncedAt   *time.Time `json:"synced_at,omitempty"`
}

// ClusterOntologies lists every active, registered node with the ontology
// version it holds (0 before its first ontology sync), by name.
func (s *Store) ClusterOntologies(ctx context.Context) ([]ClusterOntology, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.name, coalesce(o.version, 0), coalesce(o.checksum, ''), coalesce(o.workflow_id, ''), o.synced_at
		FROM clusters c LEFT JOIN cluster_ontology o ON o.cluster = c.name
		WHERE c.status = 'active' AND c.peer_id IS NOT NULL ORDER BY c.name`)
	if err != nil {
		return nil, fmt.Errorf("list node ontologies: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ClusterOntology, error) {
		var o ClusterOntology
		err := r.Scan(&o.Cluster, &o.Version, &o.Checksum, &o.WorkflowID, &o.SyncedAt)
		if o.SyncedAt != nil {
			t := o.SyncedAt.UTC()
			o.SyncedAt = &t
		}
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("list node ontologies: %w", err)
	}
	return out, nil
}

// ClusterOntologyVersion returns the ontology version a node last confirmed
// holding, 0 when none.
func (s *Store) ClusterOntologyVersion(ctx context.Context, cluster string) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT version FROM cluster_ontology WHERE cluster = $1`, cluster).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read ontology version of %q: %w", cluster, err)
	}
	return v, nil
}
