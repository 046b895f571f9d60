package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/syndb/federation/internal/migrate"
)

// FromMigrations converts migrations to their messages.
func FromMigrations(ms []migrate.Migration) []*Migration {
	out := make([]*Migration, len(ms))
	for i, m := range ms {
		out[i] = &Migration{Version: int32(m.Version), Name: m.Name, Checksum: m.Checksum, Sql: m.SQL}
	}
	return out
}

// ToMigrations converts migration messages back.
func ToMigrations(ms []*Migration) []migrate.Migration {
	out := make([]migrate.Migration, len(ms))
	for i, m := range ms {
		out[i] = migrate.Migration{Version: int(m.GetVersion()), Name: m.GetName(), Checksum: m.GetChecksum(), SQL: m.GetSql()}
	}
	return out
}

// FromApplied converts ledger rows to their messages.
func FromApplied(as []migrate.Applied) []*AppliedMigration {
	out := make([]*AppliedMigration, len(as))
	for i, a := range as {
		out[i] = &AppliedMigration{
			Version: int32(a.Version), Name: a.Name, Checksum: a.Checksum,
			AppliedAt: timestamppb.New(a.AppliedAt), Duration: durationpb.New(a.Duration),
		}
	}
	return out
}

// ToApplied converts ledger messages back.
func ToApplied(as []*AppliedMigration) []migrate.Applied {
	out := make([]migrate.Applied, len(as))
	for i, a := range as {
		out[i] = migrate.Applied{
			Version: int(a.GetVersion()), Name: a.GetName(), Checksum: a.GetChecksum(),
			AppliedAt: a.GetAppliedAt().AsTime(), Duration: a.GetDuration().AsDuration(),
		}
	}
	return out
}

// OntologyChecksum is the SHA-256 over the terms in a canonical order, so
// hub and node agree on an ontology version's content.
func OntologyChecksum(terms []*OntologyTerm) string {
	lines := make([]string, len(terms))
	for i, t := range terms {
		lines[i] = strings.Join([]string{t.GetKind(), t.GetId(), t.GetLabel(), t.GetParentId(), strings.Join(t.GetSynonyms(), "\x1f")}, "\x1e")
	}
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}
