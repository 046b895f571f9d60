package wire

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/syndb/federation/internal/domain"
)

// Limits on request contents, well inside each protocol's frame cap.
const (
	maxAddrs     = 64
	maxAddrLen   = 1024
	maxDatasets  = 10000
	maxColumns   = 512
	maxTerms     = 100000
	maxTicketTTL = 300 // seconds
)

var (
	nameRe  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// MaxQuantiles is the most quantile levels a summary may ask for.
const MaxQuantiles = 16

// Analysis kinds an AnalyticsQueryRequest may name.
const (
	// KindSummary: count, mean, stddev, min, max and quantiles of one
	// numeric column, per dataset.
	KindSummary = "summary"
)

// Ontology term kinds.
var termKinds = map[string]bool{"neurotransmitter": true, "compartment": true, "brain_region": true}

// Validate checks a registration before the hub looks at it. An empty
// clickhouse_database (an older agent) passes: the hub takes it for
// domain.DefaultClickHouseDatabase.
func (x *RegisterRequest) Validate() error {
	if !nameRe.MatchString(x.GetName()) {
		return fmt.Errorf("name %q must be 1-63 characters of a-z, 0-9 and '-'", x.GetName())
	}
	if len(x.GetAddrs()) > maxAddrs {
		return fmt.Errorf("%d addresses, at most %d", len(x.GetAddrs()), maxAddrs)
	}
	for _, a := range x.GetAddrs() {
		if a == "" || len(a) > maxAddrLen {
			return fmt.Errorf("address %.40q is empty or too long", a)
		}
	}
	if x.GetSchemaVersion() < 0 {
		return fmt.Errorf("schema version %d is negative", x.GetSchemaVersion())
	}
	if len(x.GetEnrollmentToken()) > 256 {
		return errors.New("enrollment token is too long")
	}
	if db := x.GetClickhouseDatabase(); db != "" && !domain.ValidClickHouseDatabase(db) {
		return fmt.Errorf("clickhouse_database %.80q must be 1-64 characters of A-Z, a-z, 0-9 and '_', not starting with a digit", db)
	}
	if n := len(x.GetFlightCertSha256()); n != 0 && n != sha256.Size {
		return fmt.Errorf("flight_cert_sha256 is %d bytes, not a SHA-256 (%d bytes)", n, sha256.Size)
	}
	return nil
}

// Validate accepts every ping.
func (x *HealthPingRequest) Validate() error { return nil }

// Validate checks that migrations are 1..n in order, named and checksummed,
// and that the target is among them.
func (x *SchemaSyncRequest) Validate() error {
	n := int32(len(x.GetMigrations()))
	if x.GetTarget() < 1 || x.GetTarget() > n {
		return fmt.Errorf("target %d is outside the %d migrations sent", x.GetTarget(), n)
	}
	for i, m := range x.GetMigrations() {
		if m.GetVersion() != int32(i+1) {
			return fmt.Errorf("migration %d has version %d: migrations must be 1..n in order", i+1, m.GetVersion())
		}
		if m.GetName() == "" || m.GetChecksum() == "" || m.GetSql() == "" {
			return fmt.Errorf("migration %d lacks a name, checksum or SQL", m.GetVersion())
		}
	}
	return nil
}

func validDatasetIDs(ids []string) error {
	if len(ids) > maxDatasets {
		return fmt.Errorf("%d dataset IDs, at most %d", len(ids), maxDatasets)
	}
	for _, id := range ids {
		if _, err := uuid.Parse(id); err != nil {
			return fmt.Errorf("dataset ID %.40q is not a UUID", id)
		}
	}
	return nil
}

// Validate checks the dataset filter.
func (x *DatasetCatalogRequest) Validate() error { return validDatasetIDs(x.GetDatasetIds()) }

// Validate checks the query a ticket would read, the ticket's lifetime,
// and that a write ticket names the rows it may load.
func (x *GetFlightEndpointRequest) Validate() error {
	q := x.GetQuery()
	if q == nil {
		return errors.New("query is required")
	}
	if err := q.Validate(); err != nil {
		return err
	}
	if ttl := x.GetTtl(); ttl != nil && (ttl.AsDuration() < 0 || ttl.GetSeconds() > maxTicketTTL) {
		return fmt.Errorf("ticket TTL %s is outside 0..%ds", ttl.AsDuration(), maxTicketTTL)
	}
	if x.GetWrite() && q.GetLimit() == 0 {
		return errors.New("a write ticket needs query.limit: the number of rows to load")
	}
	return nil
}

// Validate checks a Flight query's identifiers and filters, and that it
// carries no field this version does not know: a hub of an older version
// asking for a summary ticket (summary_of) is refused, instead of handed a
// ticket for the whole table.
func (x *FlightQuery) Validate() error {
	if len(x.ProtoReflect().GetUnknown()) > 0 {
		return errors.New("the query has fields this node does not know (summaries are AnalyticsQuery replies, not Flight tickets)")
	}
	if !identRe.MatchString(x.GetTable()) {
		return fmt.Errorf("table %.40q is not an identifier", x.GetTable())
	}
	if len(x.GetColumns()) > maxColumns {
		return fmt.Errorf("%d columns, at most %d", len(x.GetColumns()), maxColumns)
	}
	for _, c := range x.GetColumns() {
		if !identRe.MatchString(c) {
			return fmt.Errorf("column %.40q is not an identifier", c)
		}
	}
	return validDatasetIDs(x.GetDatasetIds())
}

// validQuantiles checks quantile levels: at most MaxQuantiles, each in
// (0, 1).
func validQuantiles(qs []float64) error {
	if len(qs) > MaxQuantiles {
		return fmt.Errorf("%d quantiles, at most %d", len(qs), MaxQuantiles)
	}
	for _, q := range qs {
		if !(q > 0 && q < 1) {
			return fmt.Errorf("quantile %v is outside (0, 1)", q)
		}
	}
	return nil
}

// Validate checks the analysis asked for.
func (x *AnalyticsQueryRequest) Validate() error {
	if x.GetKind() != KindSummary {
		return fmt.Errorf("unknown analysis kind %q (known: %s)", x.GetKind(), KindSummary)
	}
	if !identRe.MatchString(x.GetTable()) {
		return fmt.Errorf("table %.40q is not an identifier", x.GetTable())
	}
	if !identRe.MatchString(x.GetColumn()) {
		return fmt.Errorf("column %.40q is not an identifier", x.GetColumn())
	}
	if err := validQuantiles(x.GetQuantiles()); err != nil {
		return err
	}
	return validDatasetIDs(x.GetDatasetIds())
}

// Validate checks an ontology version: terms of known kinds, each ID once
// per kind, parents present, and the checksum over the terms.
func (x *OntologySyncRequest) Validate() error {
	if x.GetVersion() < 1 {
		return fmt.Errorf("ontology version %d must be positive", x.GetVersion())
	}
	if len(x.GetTerms()) == 0 || len(x.GetTerms()) > maxTerms {
		return fmt.Errorf("%d terms: want 1..%d", len(x.GetTerms()), maxTerms)
	}
	seen := make(map[[2]string]bool, len(x.GetTerms()))
	for _, t := range x.GetTerms() {
		if !termKinds[t.GetKind()] {
			return fmt.Errorf("term %q has unknown kind %q", t.GetId(), t.GetKind())
		}
		if t.GetId() == "" || t.GetLabel() == "" {
			return fmt.Errorf("a %s term lacks an ID or label", t.GetKind())
		}
		k := [2]string{t.GetKind(), t.GetId()}
		if seen[k] {
			return fmt.Errorf("%s term %q appears twice", t.GetKind(), t.GetId())
		}
		seen[k] = true
	}
	for _, t := range x.GetTerms() {
		if p := t.GetParentId(); p != "" && !seen[[2]string{t.GetKind(), p}] {
			return fmt.Errorf("%s term %q has unknown parent %q", t.GetKind(), t.GetId(), p)
		}
	}
	if sum := OntologyChecksum(x.GetTerms()); x.GetChecksum() != sum {
		return fmt.Errorf("ontology checksum %q does not match its terms (%s)", x.GetChecksum(), sum)
	}
	return nil
}

// maxMeshLocation bounds a mesh location.
const maxMeshLocation = 1024

// meshLocationRe is what a mesh location may be: s3:// with a bucket name
// and a key of the characters mesh keys are built from, so it needs no
// escaping in SQL.
var meshLocationRe = regexp.MustCompile(`^s3://[a-z0-9][a-z0-9.-]{1,62}/[A-Za-z0-9/._-]+$`)

// Validate checks the row a mesh belongs to and, unless the request only
// looks it up, the metrics (finite, positive normal numbers) and the
// location.
func (x *MeshMetricsRequest) Validate() error {
	if !identRe.MatchString(x.GetTable()) {
		return fmt.Errorf("table %.40q is not an identifier", x.GetTable())
	}
	for _, id := range []string{x.GetDatasetId(), x.GetCid()} {
		if _, err := uuid.Parse(id); err != nil {
			return fmt.Errorf("ID %.40q is not a UUID", id)
		}
	}
	if x.GetCheckOnly() {
		return nil
	}
	for _, m := range []struct {
		name string
		v    float64
	}{
		{"mesh_volume", x.GetMeshVolume()}, {"mesh_surface_area", x.GetMeshSurfaceArea()},
		{"mesh_area_volume_ratio", x.GetMeshAreaVolumeRatio()}, {"mesh_sphericity", x.GetMeshSphericity()},
	} {
		// ClickHouse parses neither NaN and infinities nor subnormal
		// numbers as literals the same way everywhere.
		if !(m.v >= 0x1p-1022 && m.v <= math.MaxFloat64) {
			return fmt.Errorf("%s %g is not a positive normal number", m.name, m.v)
		}
	}
	if l := x.GetS3MeshLocation(); len(l) > maxMeshLocation || !meshLocationRe.MatchString(l) || strings.Contains(l, "..") {
		return fmt.Errorf("s3_mesh_location %.80q is not s3://bucket/key", l)
	}
	return nil
}
