package config

import (
	"errors"
	"fmt"
	"time"
)

// Worker configures `syndb worker`: the Temporal worker and the hub's libp2p host.
type Worker struct {
	Discovery
	// RelayService makes the hub a circuit relay v2 server too, each
	// relayed connection bounded like `syndb relay`'s.
	RelayService     bool          `env:"SYNDB_P2P_RELAY_SERVICE" envDefault:"false"`
	RelayMaxDuration time.Duration `env:"SYNDB_RELAY_MAX_DURATION" envDefault:"30m"`
	RelayMaxData     int64         `env:"SYNDB_RELAY_MAX_DATA" envDefault:"67108864"`
	Postgres         Postgres
	Temporal         Temporal
	ClickHouse       ClickHouse
	S3               S3
	ETL              ETL
	Mesh             Mesh
	// Listen holds the libp2p listen multiaddrs of the hub.
	Listen []string `env:"SYNDB_P2P_LISTEN" envSeparator:"," envDefault:"/ip4/127.0.0.1/udp/4001/quic-v1,/ip4/127.0.0.1/tcp/4001"`
	// KeyFile is the hub's persistent Ed25519 identity, created on first start.
	KeyFile string `env:"SYNDB_P2P_KEY_FILE" envDefault:"hub.key"`
	// PSK, 64 hex digits, makes the federation a libp2p private network (TCP only).
	PSK string `env:"SYNDB_P2P_PSK"`
	// MaxConns sizes the hub's libp2p host: it keeps a connection to every
	// node, so this bounds the fleet (libp2p's own defaults stop near 500).
	MaxConns int `env:"SYNDB_P2P_MAX_CONNS" envDefault:"4096"`
	Health   Health
	// CatalogInterval is how often the catalog-sync schedule pulls every
	// node's dataset catalog into PostgreSQL.
	CatalogInterval time.Duration `env:"SYNDB_CATALOG_INTERVAL" envDefault:"15m"`
	// RegisterPerIP and RegisterIPBurst bound how often peers not yet
	// enrolled may try to register from one IP address (a second, and at
	// once): a site behind one address that starts many nodes together
	// needs more than the default.
	RegisterPerIP   float64 `env:"SYNDB_P2P_REGISTER_PER_IP" envDefault:"2"`
	RegisterIPBurst int     `env:"SYNDB_P2P_REGISTER_IP_BURST" envDefault:"20"`
	// DebugAddr, when set, serves Go's profiles (/debug/pprof/) there: a
	// loopback address, for the operator on the hub's machine.
	DebugAddr string `env:"SYNDB_WORKER_DEBUG_ADDR"`
	// ActivityPollers and WorkflowPollers are how many long polls the
	// Temporal worker keeps open for activity and workflow tasks (0: the
	// SDK's default, 2 each).
	ActivityPollers int `env:"SYNDB_WORKER_ACTIVITY_POLLERS" envDefault:"2"`
	WorkflowPollers int `env:"SYNDB_WORKER_WORKFLOW_POLLERS" envDefault:"2"`
	// BenchmarkInterval is how often the node-benchmark schedule measures
	// every node (ping, aggregate, Flight) into PostgreSQL.
	BenchmarkInterval time.Duration `env:"SYNDB_BENCHMARK_INTERVAL" envDefault:"15m"`
	// GatewayAddr is where the worker's ClickHouse gateway listens: the hub's
	// ClickHouse connects there to read a node over libp2p (one of
	// SYNDB_QUERY_GATEWAYS). Empty turns the gateway off.
	GatewayAddr string `env:"SYNDB_GATEWAY_ADDR" envDefault:"127.0.0.1:9010"`
	// GatewayPassword, when set, is the password a connection to the
	// gateway must present (SYNDB_GATEWAY_PASSWORD of the API too): set it
	// whenever others than the hub's ClickHouse can reach GatewayAddr.
	GatewayPassword string `env:"SYNDB_GATEWAY_PASSWORD"`
}

// setDefaults fills the worker's health defaults.
func (c *Worker) setDefaults() { c.Health = DefaultHealth() }

// Validate checks the worker configuration.
func (c *Worker) Validate() error {
	errs := []error{c.Health.Validate(), c.ETL.Validate(), c.Mesh.Validate()}
	if c.MaxConns < 64 || c.MaxConns > 1<<20 {
		errs = append(errs, fmt.Errorf("SYNDB_P2P_MAX_CONNS: %d is outside 64..1048576", c.MaxConns))
	}
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("SYNDB_P2P_LISTEN: at least one listen address is required"))
	}
	if c.CatalogInterval < 10*time.Second || c.CatalogInterval > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("SYNDB_CATALOG_INTERVAL: %s is outside 10s..168h", c.CatalogInterval))
	}
	if c.ActivityPollers < 0 || c.ActivityPollers > 64 {
		errs = append(errs, fmt.Errorf("SYNDB_WORKER_ACTIVITY_POLLERS: %d is outside 1..64 (0: the SDK's default)", c.ActivityPollers))
	}
	if c.WorkflowPollers < 0 || c.WorkflowPollers == 1 || c.WorkflowPollers > 64 {
		errs = append(errs, fmt.Errorf("SYNDB_WORKER_WORKFLOW_POLLERS: %d is outside 2..64 (0: the SDK's default)", c.WorkflowPollers))
	}
	if c.DebugAddr != "" {
		errs = append(errs, checkHostPort("SYNDB_WORKER_DEBUG_ADDR", c.DebugAddr))
	}
	if c.RegisterPerIP < 0 || c.RegisterPerIP > 10000 || c.RegisterIPBurst < 0 || c.RegisterIPBurst > 100000 {
		errs = append(errs, fmt.Errorf("SYNDB_P2P_REGISTER_PER_IP, SYNDB_P2P_REGISTER_IP_BURST: %g, %d are outside 0..10000, 0..100000 (0: the defaults)",
			c.RegisterPerIP, c.RegisterIPBurst))
	}
	if c.BenchmarkInterval < 10*time.Second || c.BenchmarkInterval > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("SYNDB_BENCHMARK_INTERVAL: %s is outside 10s..168h", c.BenchmarkInterval))
	}
	errs = append(errs,
		checkHostPort("SYNDB_TEMPORAL_ADDRESS", c.Temporal.Address),
		checkHostPort("SYNDB_CLICKHOUSE_ADDR", c.ClickHouse.Addr),
		c.Postgres.Validate(),
		c.S3.Validate(),
		checkNonEmpty("SYNDB_P2P_KEY_FILE", c.KeyFile),
		checkPSK(c.PSK),
		c.Discovery.Validate(),
		checkPrivateNetwork(c.PSK, c.Discovery, ""),
	)
	if c.GatewayAddr != "" {
		errs = append(errs, checkHostPort("SYNDB_GATEWAY_ADDR", c.GatewayAddr))
	}
	return errors.Join(errs...)
}
