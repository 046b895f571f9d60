-- +goose Up
-- The dataset catalog, pulled from every node by the CatalogSync workflow:
-- each dataset's provenance, and its row count in each compartment table.
ALTER TABLE datasets ADD COLUMN brain_region TEXT NOT NULL DEFAULT '';
ALTER TABLE datasets ADD COLUMN genetic_manipulations TEXT[] NOT NULL DEFAULT '{}';
ALTER TABLE datasets ADD COLUMN publication_doi TEXT NOT NULL DEFAULT '';
ALTER TABLE datasets ADD COLUMN notes TEXT NOT NULL DEFAULT '';
-- [{"table": "neuron", "rows": 50}, ...], by table name, and their sum.
ALTER TABLE datasets ADD COLUMN tables JSONB NOT NULL DEFAULT '[]';
ALTER TABLE datasets ADD COLUMN total_rows BIGINT NOT NULL DEFAULT 0;
-- When the node created the dataset (updated_at is when the hub last saw it change).
ALTER TABLE datasets ADD COLUMN created_at TIMESTAMPTZ;

-- array_to_string is only stable (an element type's output could change);
-- for text[] it is immutable, which a generated column needs.
-- +goose StatementBegin
CREATE FUNCTION syndb_words(text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT array_to_string($1, ' ') $$;
-- +goose StatementEnd

-- Full-text search, weighted: name and owner (A) over the animal, brain
-- region and microscopy (B), genetic manipulations and publication (C),
-- and free notes (D); ts_rank ranks an A match far above a D match.
DROP INDEX datasets_search;
ALTER TABLE datasets DROP COLUMN search;
ALTER TABLE datasets ADD COLUMN search TSVECTOR GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, name || ' ' || owner), 'A') ||
    setweight(to_tsvector('english'::regconfig, animal || ' ' || brain_region || ' ' || microscopy), 'B') ||
    setweight(to_tsvector('english'::regconfig, coalesce(syndb_words(genetic_manipulations), '') || ' ' || publication_doi), 'C') ||
    setweight(to_tsvector('english'::regconfig, notes), 'D')
) STORED;
CREATE INDEX datasets_search ON datasets USING GIN (search);
-- Exact-match filters and the listing order.
CREATE INDEX datasets_animal ON datasets (animal);
CREATE INDEX datasets_microscopy ON datasets (microscopy);
CREATE INDEX datasets_name ON datasets (name, cluster, dataset_id);

-- Each node's latest catalog written: a catalog fetched before it is stale
-- and is not written over it.
CREATE TABLE catalog_syncs (
    cluster     TEXT PRIMARY KEY REFERENCES clusters(name) ON DELETE CASCADE,
    fetched_at  TIMESTAMPTZ NOT NULL,
    datasets    INTEGER NOT NULL,
    workflow_id TEXT NOT NULL,
    written_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The fleet's ontology target: the version the latest ontology sync pushed.
-- A registering node whose recorded version is below it is caught up. One row.
CREATE TABLE ontology_target (
    singleton   BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    version     INTEGER NOT NULL CHECK (version >= 1),
    checksum    TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The ontology version each node confirmed holding, by the sync that pushed it.
CREATE TABLE cluster_ontology (
    cluster     TEXT PRIMARY KEY REFERENCES clusters(name) ON DELETE CASCADE,
    version     INTEGER NOT NULL CHECK (version >= 0),
    checksum    TEXT NOT NULL DEFAULT '',
    workflow_id TEXT NOT NULL,
    synced_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE cluster_ontology;
DROP TABLE ontology_target;
DROP TABLE catalog_syncs;
DROP INDEX datasets_name;
DROP INDEX datasets_microscopy;
DROP INDEX datasets_animal;
DROP INDEX datasets_search;
ALTER TABLE datasets DROP COLUMN search;
ALTER TABLE datasets ADD COLUMN search TSVECTOR GENERATED ALWAYS AS (
    to_tsvector('english', name || ' ' || owner || ' ' || animal || ' ' || microscopy)
) STORED;
CREATE INDEX datasets_search ON datasets USING GIN (search);
DROP FUNCTION syndb_words(text[]);
ALTER TABLE datasets DROP COLUMN created_at;
ALTER TABLE datasets DROP COLUMN total_rows;
ALTER TABLE datasets DROP COLUMN tables;
ALTER TABLE datasets DROP COLUMN notes;
ALTER TABLE datasets DROP COLUMN publication_doi;
ALTER TABLE datasets DROP COLUMN genetic_manipulations;
ALTER TABLE datasets DROP COLUMN brain_region;
