package domain

import (
	"errors"
	"regexp"
	"time"
)

// Cluster is one node in the registry.
type Cluster struct {
	Name           string   `json:"name"`
	PeerID         string   `json:"peer_id"`
	Addrs          []string `json:"addrs"`
	FlightAddr     string   `json:"flight_addr"`
	ClickHouseAddr string   `json:"clickhouse_addr"`
	// ClickHouseDatabase is the database of the node's ClickHouse that
	// holds its warehouse: what the hub's remote() reads.
	ClickHouseDatabase string `json:"clickhouse_database"`
	// FlightCertSHA256 is the SHA-256, in lowercase hex, of the certificate
	// the node's Flight TCP listener serves over TLS: the pin a worker
	// checks when it dials grpcs://. Empty when the listener is plaintext.
	FlightCertSHA256 string    `json:"flight_cert_sha256,omitempty"`
	AgentVersion     string    `json:"agent_version"`
	SchemaVersion    int       `json:"schema_version"`
	Status           string    `json:"status"`
	Health           string    `json:"health"`
	HealthSince      time.Time `json:"health_since"`
	// HealthReason says why the node is in its health state.
	HealthReason string `json:"health_reason"`
	// HealthLatencyMS is the last ping's round trip (0 before the first).
	HealthLatencyMS float64 `json:"health_latency_ms"`
	// HealthPath is the path of the hub's connection to the node at the
	// last answered ping: direct, hole-punched or relayed ("" before it).
	HealthPath string `json:"health_path"`
	// HealthTransport is that connection's transport: quic-v1 or tcp (for
	// a relayed connection, its hop to the relay's); "" before it.
	HealthTransport string `json:"health_transport"`
	// BenchmarkMS is the node's recent benchmark figure: the median, in
	// milliseconds, of its last BenchmarkFigureSamples successful aggregates
	// measured within BenchmarkFigureWindow (0: none). Routing orders the
	// nodes of one health state by it, fastest first.
	BenchmarkMS  float64   `json:"benchmark_ms"`
	LastSeen     time.Time `json:"last_seen"`
	RegisteredAt time.Time `json:"registered_at"`
	// Drift is set while the node's ledger disagrees with the hub's
	// migrations; sync leaves such a node alone.
	Drift *Drift `json:"schema_drift,omitempty"`
}

// DefaultClickHouseDatabase is the warehouse database of a node that names
// none (an agent older than the registration's clickhouse_database), and of
// the registry rows written before it.
const DefaultClickHouseDatabase = "syndb"

var clickHouseDatabaseRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// ValidClickHouseDatabase reports whether s may name a node's warehouse
// database: an identifier of at most 64 characters (a letter or '_', then
// letters, digits and '_'), which the hub can put in remote() unquoted.
func ValidClickHouseDatabase(s string) bool { return clickHouseDatabaseRe.MatchString(s) }

// Drift says where a node's schema ledger disagrees with the hub's migrations.
type Drift struct {
	Version int    `json:"version"`
	Reason  string `json:"reason"`
}

// AppliedVersion is one migration a node reported applied.
type AppliedVersion struct {
	Version  int
	Checksum string
}

// ErrPeerMismatch is returned when the registering peer is already bound
// to another cluster name.
var ErrPeerMismatch = errors.New("this peer is already registered under another name")
