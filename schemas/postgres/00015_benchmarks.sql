-- +goose Up
-- Node benchmarks: one row per node and kind of each NodeBenchmark run
-- (ping round trip, a standard aggregate's latency over the data plane,
-- Flight throughput in rows and in MB a second). A kind that could not be
-- measured is a failed row: no value, and the reason. path is the path of
-- the hub's libp2p connection to the node when it was measured (direct,
-- hole-punched, relayed; empty without one). A retried write of a run's
-- rows records each once (run_id, node, kind).
CREATE TABLE benchmarks (
    id          BIGSERIAL PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    node        TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('ping', 'aggregate', 'flight_rows', 'flight_bytes')),
    value       DOUBLE PRECISION,
    unit        TEXT NOT NULL,
    path        TEXT NOT NULL DEFAULT '' CHECK (path IN ('', 'direct', 'hole-punched', 'relayed')),
    ok          BOOLEAN NOT NULL,
    error       TEXT NOT NULL DEFAULT '',
    measured_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT benchmarks_value_check CHECK ((ok AND value IS NOT NULL AND error = '') OR (NOT ok AND value IS NULL AND error <> '')),
    UNIQUE (run_id, node, kind)
);
CREATE INDEX benchmarks_measured ON benchmarks (measured_at DESC, id DESC);
-- A node's rows of one kind, newest first: the list's filters, and the
-- registry's figure of each node (its latest successful aggregates).
CREATE INDEX benchmarks_node_kind ON benchmarks (node, kind, measured_at DESC, id DESC);

-- New (or deleted) figures change how routing orders nodes: the registry
-- snapshots reload on syndb_registry, as for a change to the clusters table.
CREATE TRIGGER benchmarks_changed AFTER INSERT OR DELETE ON benchmarks
    FOR EACH STATEMENT EXECUTE FUNCTION syndb_registry_changed();

-- +goose Down
DROP TABLE benchmarks;
