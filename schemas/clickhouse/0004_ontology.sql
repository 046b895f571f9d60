-- Ontology: versioned controlled vocabularies (neurotransmitters, compartments,
-- brain regions) pushed from the hub with OntologySync. Each version's terms
-- are written in one insert block (atomic), then recorded in the ledger, so a
-- retried sync neither duplicates nor loses terms.
CREATE TABLE IF NOT EXISTS ontology_terms (
    version   UInt32,
    kind      String,
    term_id   String,
    label     String,
    parent_id String,
    synonyms  Array(String)
) ENGINE = MergeTree()
ORDER BY (version, kind, term_id);

CREATE TABLE IF NOT EXISTS ontology_versions (
    version    UInt32,
    checksum   String,
    terms      UInt32,
    applied_at DateTime
) ENGINE = MergeTree()
ORDER BY version;
