package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/syndb/federation/internal/migrate"
)

// Protocol IDs, one per message, versioned.
const (
	ProtoRegister   protocol.ID = "/syndb/cluster/register/1.0.0"
	ProtoHealthPing protocol.ID = "/syndb/cluster/health/1.0.0"
	ProtoSchemaSync protocol.ID = "/syndb/cluster/schema-sync/1.0.0"
)

// RegisterRequest is sent by a node to the hub to join the federation.
type RegisterRequest struct {
	Name           string   `json:"name"`
	Addrs          []string `json:"addrs"`
	FlightAddr     string   `json:"flight_addr"`
	ClickHouseAddr string   `json:"clickhouse_addr"`
	SchemaVersion  int      `json:"schema_version"`
	AgentVersion   string   `json:"agent_version"`
	// EnrollmentToken binds the name to this peer on first registration.
	EnrollmentToken string `json:"enrollment_token,omitempty"`
}

// RegisterResponse is the hub's answer to a RegisterRequest.
type RegisterResponse struct {
	Name         string `json:"name"`
	TargetSchema int    `json:"target_schema"`
}

// HealthPingRequest asks a node how it is.
type HealthPingRequest struct {
	Nonce uint64 `json:"nonce"`
}

// HealthPingResponse reports a node's state.
type HealthPingResponse struct {
	Nonce             uint64        `json:"nonce"`
	Name              string        `json:"name"`
	AgentVersion      string        `json:"agent_version"`
	SchemaVersion     int           `json:"schema_version"`
	ClickHouseOK      bool          `json:"clickhouse_ok"`
	ClickHouseLatency time.Duration `json:"clickhouse_latency"`
	ClickHouseError   string        `json:"clickhouse_error,omitempty"`
}

// SchemaSyncRequest carries the hub's migrations, 1..n, and the version the
// node must reach. The node verifies checksums and applies what it lacks.
type SchemaSyncRequest struct {
	Target     int                 `json:"target"`
	Migrations []migrate.Migration `json:"migrations"`
}

// SchemaSyncResponse reports what the node applied and its new version.
type SchemaSyncResponse struct {
	From    int               `json:"from"`
	To      int               `json:"to"`
	Applied []migrate.Applied `json:"applied"`
	// Ledger is the node's whole ledger after the sync, so a retried call
	// still reports every version even when it applied nothing new.
	Ledger []migrate.Applied `json:"ledger"`
}
