-- Datasets: one row per dataset held by this warehouse, linking every
-- compartment row (by dataset_id) to its provenance.
CREATE TABLE IF NOT EXISTS datasets (
    dataset_id            UUID,
    name                  String,
    owner                 String,
    animal                String,
    brain_region          String,
    genetic_manipulations Array(String),
    microscopy            String,
    publication_doi       String,
    notes                 String,
    created_at            DateTime
) ENGINE = MergeTree()
ORDER BY dataset_id;
