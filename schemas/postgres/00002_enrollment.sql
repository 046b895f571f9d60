-- +goose Up
-- Single-use enrollment tokens: an admin creates a cluster entry and gets a
-- token; the node presents it on its first registration, which binds the
-- cluster's name to the node's peer ID. Only the token's hash is stored.
CREATE TABLE enrollment_tokens (
    token_hash BYTEA PRIMARY KEY,
    cluster    TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    used_by    TEXT
);
CREATE INDEX enrollment_tokens_open ON enrollment_tokens (expires_at) WHERE used_at IS NULL;

ALTER TABLE clusters ADD COLUMN revoked_at TIMESTAMPTZ;

-- +goose Down
ALTER TABLE clusters DROP COLUMN revoked_at;
DROP TABLE enrollment_tokens;
