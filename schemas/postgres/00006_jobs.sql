-- +goose Up
-- A job's run: when it started and ended, each node's part, the merged
-- result (a small JSON summary; the full result is an S3 object).
ALTER TABLE jobs ADD COLUMN started_at TIMESTAMPTZ;
ALTER TABLE jobs ADD COLUMN finished_at TIMESTAMPTZ;
ALTER TABLE jobs ADD COLUMN nodes JSONB NOT NULL DEFAULT '[]';
ALTER TABLE jobs ADD COLUMN result JSONB;
ALTER TABLE jobs ADD COLUMN result_object TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD CONSTRAINT jobs_state_valid
    CHECK (state IN ('pending', 'running', 'completed', 'partial', 'failed', 'cancelled'));

-- +goose Down
ALTER TABLE jobs DROP CONSTRAINT jobs_state_valid;
ALTER TABLE jobs DROP COLUMN result_object;
ALTER TABLE jobs DROP COLUMN result;
ALTER TABLE jobs DROP COLUMN nodes;
ALTER TABLE jobs DROP COLUMN finished_at;
ALTER TABLE jobs DROP COLUMN started_at;
