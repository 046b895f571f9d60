-- +goose Up
-- Accounts own API keys. A key is shown once at creation and stored only as
-- its SHA-256 hash (keys are 256-bit random, so a slow hash adds nothing).
CREATE TABLE accounts (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           BIGSERIAL PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     BYTEA NOT NULL UNIQUE,
    role         TEXT NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'reader')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

-- The cluster registry: one row per lab node. PostgreSQL is the source of
-- truth; the API reads it through an in-memory snapshot.
CREATE TABLE clusters (
    name            TEXT PRIMARY KEY CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    peer_id         TEXT UNIQUE,
    addrs           TEXT[] NOT NULL DEFAULT '{}',
    flight_addr     TEXT NOT NULL DEFAULT '',
    clickhouse_addr TEXT NOT NULL DEFAULT '',
    agent_version   TEXT NOT NULL DEFAULT '',
    schema_version  INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    health          TEXT NOT NULL DEFAULT 'unknown' CHECK (health IN ('unknown', 'healthy', 'degraded', 'unreachable')),
    health_since    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen       TIMESTAMPTZ,
    registered_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every migration a node reports applied, by the sync run that applied it.
CREATE TABLE cluster_schema_versions (
    cluster     TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    checksum    TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, version)
);

-- Audit of health state transitions.
CREATE TABLE health_transitions (
    id         BIGSERIAL PRIMARY KEY,
    cluster    TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    latency_ms DOUBLE PRECISION,
    at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX health_transitions_cluster_at ON health_transitions (cluster, at DESC);

-- Jobs: the queue and history of analytics and ETL runs; the workflow executes.
CREATE TABLE jobs (
    id          UUID PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('analytics', 'etl')),
    state       TEXT NOT NULL DEFAULT 'pending',
    spec        JSONB NOT NULL,
    workflow_id TEXT NOT NULL UNIQUE,
    created_by  BIGINT REFERENCES api_keys(id) ON DELETE SET NULL,
    error       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX jobs_state_created ON jobs (state, created_at DESC);

-- Dataset catalog pulled from nodes, searchable with full-text search.
CREATE TABLE datasets (
    cluster      TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
    dataset_id   UUID NOT NULL,
    name         TEXT NOT NULL,
    owner        TEXT NOT NULL DEFAULT '',
    animal       TEXT NOT NULL DEFAULT '',
    microscopy   TEXT NOT NULL DEFAULT '',
    metadata     JSONB NOT NULL DEFAULT '{}',
    search       TSVECTOR GENERATED ALWAYS AS (
        to_tsvector('english', name || ' ' || owner || ' ' || animal || ' ' || microscopy)
    ) STORED,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, dataset_id)
);
CREATE INDEX datasets_search ON datasets USING GIN (search);

-- +goose Down
DROP TABLE datasets;
DROP TABLE jobs;
DROP TABLE health_transitions;
DROP TABLE cluster_schema_versions;
DROP TABLE clusters;
DROP TABLE api_keys;
DROP TABLE accounts;
