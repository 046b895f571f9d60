-- +goose Up
-- The database of a node's ClickHouse that holds its warehouse, as the node
-- registers it: what the hub's remote() reads. Nodes registered before the
-- node told it read 'syndb', the agent's default. Only an identifier is
-- stored, whatever a node sends.
ALTER TABLE clusters ADD COLUMN clickhouse_database TEXT NOT NULL DEFAULT 'syndb'
    CONSTRAINT clusters_clickhouse_database_check CHECK (clickhouse_database ~ '^[A-Za-z_][A-Za-z0-9_]{0,63}$');

-- +goose Down
ALTER TABLE clusters DROP COLUMN clickhouse_database;
