-- +goose Up
-- One row per federated query (POST /v1/query): who ran it, what, on which
-- nodes, how much it read and how it ended. A row is written when the query
-- starts (outcome running) and completed when it ends; a DELETE of a running
-- query sets cancel_requested_at before killing it on the hub's ClickHouse,
-- so the API replica serving it records it cancelled.
CREATE TABLE queries (
    id                  UUID PRIMARY KEY,
    key_id              BIGINT REFERENCES api_keys(id) ON DELETE SET NULL,
    account             TEXT NOT NULL DEFAULT '',
    key_name            TEXT NOT NULL DEFAULT '',
    role                TEXT NOT NULL DEFAULT '',
    sql                 TEXT NOT NULL,
    nodes               TEXT[] NOT NULL DEFAULT '{}',
    rows                BIGINT NOT NULL DEFAULT 0,
    bytes_read          BIGINT NOT NULL DEFAULT 0,
    duration_ms         BIGINT NOT NULL DEFAULT 0,
    outcome             TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'failed', 'cancelled', 'refused')),
    error               TEXT,
    cancel_requested_at TIMESTAMPTZ,
    started_at          TIMESTAMPTZ NOT NULL,
    finished_at         TIMESTAMPTZ
);
CREATE INDEX queries_started ON queries (started_at DESC, id DESC);
CREATE INDEX queries_key_started ON queries (key_id, started_at DESC, id DESC);

-- +goose Down
DROP TABLE queries;
