-- +goose Up
-- Drift: the node's ledger disagrees with the hub's migration files. Sync
-- refuses to touch a drifted node; the version and reason say where.
ALTER TABLE clusters ADD COLUMN schema_drift_version INTEGER;
ALTER TABLE clusters ADD COLUMN schema_drift TEXT NOT NULL DEFAULT '';

-- The fleet's schema target: the version the latest sync asked every node to
-- reach. A node below it (one that was away, or newly registered) is caught
-- up when it registers. One row.
CREATE TABLE schema_target (
    singleton   BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    version     INTEGER NOT NULL CHECK (version >= 0),
    workflow_id TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE schema_target;
ALTER TABLE clusters DROP COLUMN schema_drift;
ALTER TABLE clusters DROP COLUMN schema_drift_version;
