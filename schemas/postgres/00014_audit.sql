-- +goose Up
-- One row per audited API call: every mutating call on /v1 (POST, PUT,
-- PATCH, DELETE) and every federated query, refused ones included. It says
-- who (the key, its name, account and role; none for a call without a valid
-- key), what (method, the route's pattern, its target: a path parameter, a
-- started workflow, a query ID), how it ended (status, outcome, duration),
-- from where (the client's address) and the request's ID. It never holds a
-- request or answer body, a header or a credential. key_id is not a foreign
-- key: the audit outlives the keys it names.
CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    key_id      BIGINT,
    key_name    TEXT NOT NULL DEFAULT '',
    account     TEXT NOT NULL DEFAULT '',
    role        TEXT NOT NULL DEFAULT '',
    method      TEXT NOT NULL,
    route       TEXT NOT NULL,
    target      TEXT NOT NULL DEFAULT '',
    status      INTEGER NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    duration_ms BIGINT NOT NULL,
    client      TEXT NOT NULL DEFAULT '',
    request_id  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_key ON audit_log (key_id, id DESC);
CREATE INDEX audit_log_at ON audit_log (at);

-- +goose Down
DROP TABLE audit_log;
