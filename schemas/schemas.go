// Package schemas embeds the SynDB database schemas.
//
// clickhouse/ holds the numbered warehouse migrations applied to the hub and,
// through schema sync, to every node. A released file is immutable: its
// checksum is recorded in each warehouse's ledger and a changed file is drift.
// postgres/ holds the hub's own schema, applied at start by goose.
// ontology/ holds the versioned ontology the hub pushes to every node.
package schemas

import (
	"embed"
	"fmt"
	"io/fs"

	"github.com/syndb/federation/internal/migrate"
)

// ClickHouse holds the warehouse migrations, named NNNN_name.sql.
//
//go:embed clickhouse/*.sql
var ClickHouse embed.FS

// Postgres holds the hub's PostgreSQL migrations in goose format.
//
//go:embed postgres/*.sql
var Postgres embed.FS

// OntologyJSON is the hub's ontology: versioned controlled vocabularies
// (neurotransmitters, compartments, brain regions), read by internal/ontology.
//
//go:embed ontology/ontology.json
var OntologyJSON []byte

// ClickHouseMigrations returns the embedded warehouse migrations, 1..n.
func ClickHouseMigrations() ([]migrate.Migration, error) {
	sub, err := fs.Sub(ClickHouse, "clickhouse")
	if err != nil {
		return nil, fmt.Errorf("open embedded migrations: %w", err)
	}
	return migrate.Load(sub, ".")
}
