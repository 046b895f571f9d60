package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// Spec is one message's protocol: its versioned ID, the deadline of a whole
// exchange, and the size caps of its request and response frames. The
// message types themselves are defined once, in schemas/proto, and
// generated into internal/wire.
type Spec struct {
	ID          protocol.ID
	Timeout     time.Duration
	MaxRequest  int
	MaxResponse int
}

// The message set. Deadlines and caps are sized to each message's work:
// a ping is tiny and quick; a schema sync carries every migration and may
// run long DDL; a catalog or analytics answer can list many datasets.
var (
	// Register (node → hub): join the federation.
	Register = Spec{ID: "/syndb/cluster/register/1.0.0", Timeout: 15 * time.Second, MaxRequest: 64 << 10, MaxResponse: 4 << 10}
	// HealthPing (hub → node): liveness, ClickHouse state, schema version.
	HealthPing = Spec{ID: "/syndb/cluster/health/1.0.0", Timeout: 10 * time.Second, MaxRequest: 1 << 10, MaxResponse: 16 << 10}
	// SchemaSync (hub → node): apply the migrations the node lacks.
	SchemaSync = Spec{ID: "/syndb/cluster/schema-sync/1.0.0", Timeout: 10 * time.Minute, MaxRequest: 8 << 20, MaxResponse: 1 << 20}
	// DatasetCatalog (hub → node): the datasets the node holds.
	DatasetCatalog = Spec{ID: "/syndb/cluster/dataset-catalog/1.0.0", Timeout: 2 * time.Minute, MaxRequest: 256 << 10, MaxResponse: 8 << 20}
	// FlightEndpoint (hub → node): a Flight location and a signed ticket.
	FlightEndpoint = Spec{ID: "/syndb/cluster/flight-endpoint/1.0.0", Timeout: 15 * time.Second, MaxRequest: 256 << 10, MaxResponse: 256 << 10}
	// AnalyticsQuery (hub → node): compute an analysis on local data.
	AnalyticsQuery = Spec{ID: "/syndb/cluster/analytics/1.0.0", Timeout: 30 * time.Minute, MaxRequest: 256 << 10, MaxResponse: 8 << 20}
	// OntologySync (hub → node): store a version of the ontology.
	OntologySync = Spec{ID: "/syndb/cluster/ontology-sync/1.0.0", Timeout: 5 * time.Minute, MaxRequest: 8 << 20, MaxResponse: 4 << 10}
	// MeshMetrics (hub → node): write a mesh's metrics and location into its
	// compartment's row; the node waits for its ClickHouse mutation.
	MeshMetrics = Spec{ID: "/syndb/cluster/mesh-metrics/1.0.0", Timeout: 2 * time.Minute, MaxRequest: 4 << 10, MaxResponse: 1 << 10}
)

// Specs lists the whole message set.
var Specs = []Spec{Register, HealthPing, SchemaSync, DatasetCatalog, FlightEndpoint, AnalyticsQuery, OntologySync, MeshMetrics}

// FlightProtocol (hub → node) carries the node's Arrow Flight service,
// gRPC over one libp2p stream per gRPC connection (flightstream.go): the
// data plane rides the connection the messages use.
const FlightProtocol protocol.ID = "/syndb/flight/1.0.0"

// ClickHouseStream (hub → node) carries one ClickHouse native-protocol
// connection of the hub's ClickHouse to the node's (chgateway.go). It is a
// byte stream, not a message, so it is not in Specs.
const ClickHouseStream protocol.ID = "/syndb/clickhouse/1.0.0"
