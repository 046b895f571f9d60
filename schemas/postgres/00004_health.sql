-- +goose Up
-- The health monitor's view of each node: why it is in its state and the
-- last round trip measured.
ALTER TABLE clusters ADD COLUMN health_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters ADD COLUMN health_latency_ms DOUBLE PRECISION;

-- Every change to the registry is announced on syndb_registry, once per
-- statement, so hub processes refresh their in-memory snapshot of it.
-- +goose StatementBegin
CREATE FUNCTION syndb_registry_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('syndb_registry', TG_OP);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER clusters_changed AFTER INSERT OR UPDATE OR DELETE ON clusters
    FOR EACH STATEMENT EXECUTE FUNCTION syndb_registry_changed();

-- +goose Down
DROP TRIGGER clusters_changed ON clusters;
DROP FUNCTION syndb_registry_changed();
ALTER TABLE clusters DROP COLUMN health_latency_ms;
ALTER TABLE clusters DROP COLUMN health_reason;
