package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/syndb/federation/internal/domain"
)

// RecordSchemaDrift marks a node as drifted: its ledger disagrees with the
// hub's migrations at version. A later successful sync clears it.
func (s *Store) RecordSchemaDrift(ctx context.Context, cluster string, version int, reason string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE clusters SET schema_drift_version = $2, schema_drift = $3, last_seen = now(), updated_at = now()
		WHERE name = $1`, cluster, version, reason)
	if err != nil {
		return fmt.Errorf("record schema drift of %q: %w", cluster, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("record schema drift of %q: %w", cluster, domain.ErrNotFound)
	}
	return nil
}

// SetSchemaTarget records the version the fleet was last asked to reach, by
// the sync workflowID.
func (s *Store) SetSchemaTarget(ctx context.Context, version int, workflowID string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO schema_target (singleton, version, workflow_id) VALUES (true, $1, $2)
		ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, workflow_id = EXCLUDED.workflow_id, updated_at = now()`,
		version, workflowID)
	if err != nil {
		return fmt.Errorf("record schema target %d: %w", version, err)
	}
	return nil
}

// SchemaTarget returns the version the fleet was last asked to reach, 0 when
// no sync has run yet.
func (s *Store) SchemaTarget(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT version FROM schema_target`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema target: %w", err)
	}
	return v, nil
}
