package config

import (
	"errors"
	"fmt"
	"time"
)

// Query configures federated SQL (POST /v1/query).
type Query struct {
	// MaxRows caps every query's LIMIT.
	MaxRows int `env:"SYNDB_QUERY_MAX_ROWS" envDefault:"1000000"`
	// MaxJoinRows caps the rows a fleet-scope join holds on the hub; a
	// bigger side fails the query with a clear error.
	MaxJoinRows int `env:"SYNDB_QUERY_MAX_JOIN_ROWS" envDefault:"1000000"`
	// MaxMemory caps the memory a query may hold on the hub's ClickHouse
	// (max_memory_usage), and MaxResultBytes the size of its result there
	// (max_result_bytes; MaxRows is its max_result_rows). The API sends them
	// with every federated statement. The nodes' shares run under the
	// limits of each lab's gateway user instead: a readonly=1 user keeps
	// its own profile whatever the hub sends.
	MaxMemory      int64 `env:"SYNDB_QUERY_MAX_MEMORY" envDefault:"1000000000"`
	MaxResultBytes int64 `env:"SYNDB_QUERY_MAX_RESULT_BYTES" envDefault:"1000000000"`
	// Timeout bounds a query's run on ClickHouse.
	Timeout time.Duration `env:"SYNDB_QUERY_TIMEOUT" envDefault:"60s"`
	// RemoteUser and RemotePassword are what the hub's ClickHouse logs in
	// with on every node (remote()); the database it reads there is the
	// one each node registered.
	RemoteUser     string `env:"SYNDB_REMOTE_USER" envDefault:"default"`
	RemotePassword string `env:"SYNDB_REMOTE_PASSWORD"`
	// RemoteConnectTimeout and RemoteReceiveTimeout bound how long the
	// hub's ClickHouse waits on one node's warehouse, to connect and then
	// for each packet: a stalled node fails its share of a query within
	// them, and is excluded, instead of holding the whole query.
	RemoteConnectTimeout time.Duration `env:"SYNDB_QUERY_REMOTE_CONNECT_TIMEOUT" envDefault:"2s"`
	RemoteReceiveTimeout time.Duration `env:"SYNDB_QUERY_REMOTE_RECEIVE_TIMEOUT" envDefault:"5s"`
	// ProbeTimeout bounds the check of each node, one by one, after a
	// query failed on a connection to a node.
	ProbeTimeout time.Duration `env:"SYNDB_QUERY_PROBE_TIMEOUT" envDefault:"3s"`
	// MaxConns sizes the API's pool of connections to the hub's
	// ClickHouse; keep it at least 4× the queries expected at once. A query
	// waits at most ConnWait for a connection, then is answered 503.
	MaxConns int           `env:"SYNDB_QUERY_MAX_CONNS" envDefault:"64"`
	ConnWait time.Duration `env:"SYNDB_QUERY_CONN_WAIT" envDefault:"2s"`
	// DataPlane is how the hub's ClickHouse reaches the nodes' warehouses:
	// DataPlaneLibp2p through the workers' gateways (Gateways) and the
	// nodes' libp2p ports, or DataPlaneDirect at each node's registered
	// ClickHouse address with RemoteUser and RemotePassword.
	DataPlane string `env:"SYNDB_DATA_PLANE" envDefault:"libp2p"`
	// Gateways are the workers' ClickHouse gateways (SYNDB_GATEWAY_ADDR of
	// each), host:port; remote() lists them as replicas, tried in order.
	Gateways []string `env:"SYNDB_QUERY_GATEWAYS" envSeparator:"," envDefault:"127.0.0.1:9010"`
	// GatewayPassword is the password remote() presents to the gateways
	// (the workers' SYNDB_GATEWAY_PASSWORD; none by default).
	GatewayPassword string `env:"SYNDB_GATEWAY_PASSWORD"`
}

// The data planes (SYNDB_DATA_PLANE): of federated SQL (Query.DataPlane)
// and of the node's Flight service (Node.DataPlane).
const (
	// DataPlaneLibp2p carries the data plane over libp2p: SQL through the
	// workers' gateways, Flight on p2p.FlightProtocol.
	DataPlaneLibp2p = "libp2p"
	// DataPlaneDirect dials the node's registered addresses over TCP.
	DataPlaneDirect = "direct"
)

// Validate checks the query settings.
func (q *Query) Validate() error {
	var errs []error
	if q.MaxRows < 1 || q.Timeout < time.Second {
		errs = append(errs, errors.New("SYNDB_QUERY_MAX_ROWS must be positive and SYNDB_QUERY_TIMEOUT at least 1s"))
	}
	if q.MaxMemory < 1<<20 || q.MaxMemory > 1<<40 {
		errs = append(errs, fmt.Errorf("SYNDB_QUERY_MAX_MEMORY: %d is outside 1 MiB..1 TiB", q.MaxMemory))
	}
	if q.MaxResultBytes < 1 || q.MaxResultBytes > 1<<40 {
		errs = append(errs, fmt.Errorf("SYNDB_QUERY_MAX_RESULT_BYTES: %d is outside 1..1 TiB", q.MaxResultBytes))
	}
	if q.RemoteConnectTimeout < 100*time.Millisecond || q.RemoteConnectTimeout > q.Timeout {
		errs = append(errs, fmt.Errorf("SYNDB_QUERY_REMOTE_CONNECT_TIMEOUT: %s is outside 100ms..SYNDB_QUERY_TIMEOUT", q.RemoteConnectTimeout))
	}
	if q.RemoteReceiveTimeout < time.Second || q.RemoteReceiveTimeout > q.Timeout {
		errs = append(errs, fmt.Errorf("SYNDB_QUERY_REMOTE_RECEIVE_TIMEOUT: %s is outside 1s..SYNDB_QUERY_TIMEOUT", q.RemoteReceiveTimeout))
	}
	if q.ProbeTimeout < time.Second || q.ProbeTimeout > time.Minute {
		errs = append(errs, fmt.Errorf("SYNDB_QUERY_PROBE_TIMEOUT: %s is outside 1s..1m", q.ProbeTimeout))
	}
	if q.MaxConns < 4 || q.MaxConns > 10000 {
		errs = append(errs, fmt.Errorf("SYNDB_QUERY_MAX_CONNS: %d is outside 4..10000", q.MaxConns))
	}
	if q.ConnWait < 100*time.Millisecond || q.ConnWait > time.Minute {
		errs = append(errs, fmt.Errorf("SYNDB_QUERY_CONN_WAIT: %s is outside 100ms..1m", q.ConnWait))
	}
	switch q.DataPlane {
	case DataPlaneDirect:
	case DataPlaneLibp2p:
		q.Gateways = nonBlank(q.Gateways)
		if len(q.Gateways) == 0 {
			errs = append(errs, errors.New("SYNDB_QUERY_GATEWAYS: the libp2p data plane needs at least one gateway"))
		}
		for _, g := range q.Gateways {
			errs = append(errs, checkHostPort("SYNDB_QUERY_GATEWAYS", g))
		}
	default:
		errs = append(errs, fmt.Errorf("SYNDB_DATA_PLANE: %q is neither %s nor %s", q.DataPlane, DataPlaneLibp2p, DataPlaneDirect))
	}
	return errors.Join(errs...)
}

// MaxSyncConcurrency caps a sync's fan-out, well below Temporal's 2,000
// pending activities per workflow execution.
const MaxSyncConcurrency = 1000
