// Package config holds the typed configuration of every SynDB component.
//
// Each component has one struct, loaded once from the environment (variables
// prefixed SYNDB_) and validated before use. Defaults match the single-machine
// development federation described in the README, so a bare `syndb api` talks
// to the services `syndb dev` starts.
package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/joho/godotenv"
)

// DevEnvFile is the file `syndb dev` writes with the settings it resolved
// (ports, keys). Commands run from the repository read it when present, so
// `syndb apikey create` reaches the dev PostgreSQL wherever it landed.
const DevEnvFile = ".dev/syndb.env"

// Postgres configures the hub's PostgreSQL connection.
type Postgres struct {
	DSN string `env:"SYNDB_POSTGRES_DSN" envDefault:"postgres://syndb:syndb@127.0.0.1:5432/syndb?sslmode=disable"`
}

// Temporal configures the Temporal client.
type Temporal struct {
	Address   string `env:"SYNDB_TEMPORAL_ADDRESS" envDefault:"127.0.0.1:7233"`
	Namespace string `env:"SYNDB_TEMPORAL_NAMESPACE" envDefault:"default"`
	UIURL     string `env:"SYNDB_TEMPORAL_UI_URL" envDefault:"http://127.0.0.1:8233"`
}

// ClickHouse configures a connection to one ClickHouse server (native protocol).
type ClickHouse struct {
	Addr     string `env:"SYNDB_CLICKHOUSE_ADDR" envDefault:"127.0.0.1:9000"`
	User     string `env:"SYNDB_CLICKHOUSE_USER" envDefault:"default"`
	Password string `env:"SYNDB_CLICKHOUSE_PASSWORD"`
	Database string `env:"SYNDB_CLICKHOUSE_DATABASE" envDefault:"syndb"`
}

// S3 configures the hub's object store.
type S3 struct {
	Endpoint      string `env:"SYNDB_S3_ENDPOINT" envDefault:"127.0.0.1:9100"`
	AccessKey     string `env:"SYNDB_S3_ACCESS_KEY" envDefault:"syndb"`
	SecretKey     string `env:"SYNDB_S3_SECRET_KEY" envDefault:"syndb-dev-secret"`
	UseTLS        bool   `env:"SYNDB_S3_TLS" envDefault:"false"`
	ResultsBucket string `env:"SYNDB_S3_RESULTS_BUCKET" envDefault:"syndb-results"`
	StagingBucket string `env:"SYNDB_S3_STAGING_BUCKET" envDefault:"syndb-staging"`
}

// API configures `syndb api`.
type API struct {
	Addr       string `env:"SYNDB_API_ADDR" envDefault:"127.0.0.1:8080"`
	PublicURL  string `env:"SYNDB_API_PUBLIC_URL" envDefault:"http://127.0.0.1:8080"`
	Postgres   Postgres
	Temporal   Temporal
	ClickHouse ClickHouse
	S3         S3
	// ShutdownTimeout bounds how long in-flight requests may finish on stop.
	ShutdownTimeout time.Duration `env:"SYNDB_API_SHUTDOWN_TIMEOUT" envDefault:"10s"`
}

// Worker configures `syndb worker`: the Temporal worker and the hub's libp2p host.
type Worker struct {
	Postgres   Postgres
	Temporal   Temporal
	ClickHouse ClickHouse
	// Listen holds the libp2p listen multiaddrs of the hub.
	Listen []string `env:"SYNDB_P2P_LISTEN" envSeparator:"," envDefault:"/ip4/127.0.0.1/udp/4001/quic-v1,/ip4/127.0.0.1/tcp/4001"`
	// KeyFile is the hub's persistent Ed25519 identity, created on first start.
	KeyFile string `env:"SYNDB_P2P_KEY_FILE" envDefault:"hub.key"`
	// PSK, 64 hex digits, makes the federation a libp2p private network (TCP only).
	PSK string `env:"SYNDB_P2P_PSK"`
	// SyncConcurrency bounds how many nodes a schema sync talks to at once.
	SyncConcurrency int `env:"SYNDB_SYNC_CONCURRENCY" envDefault:"32"`
}

// Node configures `syndb node`, the agent that runs beside a lab's ClickHouse.
type Node struct {
	Name string `env:"SYNDB_NODE_NAME"`
	// Hub is the hub's libp2p multiaddr, ending in /p2p/<peer ID>.
	Hub     string   `env:"SYNDB_HUB_ADDR"`
	Listen  []string `env:"SYNDB_P2P_LISTEN" envSeparator:"," envDefault:"/ip4/127.0.0.1/udp/4002/quic-v1,/ip4/127.0.0.1/tcp/4002"`
	KeyFile string   `env:"SYNDB_P2P_KEY_FILE" envDefault:"node.key"`
	// EnrollmentToken is presented on the first registration (POST
	// /v1/federation/clusters creates it); later registrations need none.
	EnrollmentToken string `env:"SYNDB_ENROLLMENT_TOKEN"`
	// PSK, 64 hex digits, must match the hub's when the hub sets one.
	PSK string `env:"SYNDB_P2P_PSK"`
	// FlightAddr is where the node's Arrow Flight server listens.
	FlightAddr string `env:"SYNDB_FLIGHT_ADDR" envDefault:"127.0.0.1:50052"`
	ClickHouse ClickHouse
	// ClickHousePublicAddr is the native address the hub's ClickHouse uses in
	// remote(); it defaults to ClickHouse.Addr.
	ClickHousePublicAddr string `env:"SYNDB_CLICKHOUSE_PUBLIC_ADDR"`
}

// DecodePSK decodes a private-network key given as 64 hex digits ("" is none).
func DecodePSK(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 32 {
		return nil, errors.New("SYNDB_P2P_PSK must be 64 hex digits (32 bytes)")
	}
	return b, nil
}

// LoadDevEnv reads DevEnvFile into the environment when it exists, without
// overriding variables that are already set.
func LoadDevEnv() error {
	if _, err := os.Stat(DevEnvFile); err != nil {
		return nil //nolint:nilerr // a missing dev file is the normal production case
	}
	if err := godotenv.Load(DevEnvFile); err != nil {
		return fmt.Errorf("read %s: %w", DevEnvFile, err)
	}
	return nil
}

// Load parses T from the environment and validates it.
func Load[T any]() (T, error) {
	var c T
	if err := env.Parse(&c); err != nil {
		return c, fmt.Errorf("invalid configuration: %w", explain(reflect.TypeOf(c), err))
	}
	if v, ok := any(&c).(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return c, fmt.Errorf("invalid configuration: %w", err)
		}
	}
	return c, nil
}

// explain rewrites the parser's errors, which name Go fields, to name the
// environment variables a user set.
func explain(rt reflect.Type, err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	keys := map[string][]string{}
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for f := range rt.Fields() {
			if k, ok := f.Tag.Lookup("env"); ok {
				keys[f.Name] = append(keys[f.Name], k)
			} else if f.Type.Kind() == reflect.Struct {
				walk(f.Type)
			}
		}
	}
	walk(rt)
	out := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) && len(keys[pe.Name]) == 1 {
			k := keys[pe.Name][0]
			out = append(out, fmt.Errorf("%s=%q is not a valid %s", k, os.Getenv(k), pe.Type))
			continue
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// Validate checks the API configuration.
func (c *API) Validate() error {
	return errors.Join(
		checkHostPort("SYNDB_API_ADDR", c.Addr),
		checkHostPort("SYNDB_TEMPORAL_ADDRESS", c.Temporal.Address),
		checkHostPort("SYNDB_CLICKHOUSE_ADDR", c.ClickHouse.Addr),
		checkHostPort("SYNDB_S3_ENDPOINT", c.S3.Endpoint),
		checkNonEmpty("SYNDB_POSTGRES_DSN", c.Postgres.DSN),
	)
}

// Validate checks the worker configuration.
func (c *Worker) Validate() error {
	var errs []error
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("SYNDB_P2P_LISTEN: at least one listen address is required"))
	}
	if c.SyncConcurrency < 1 || c.SyncConcurrency > 1000 {
		errs = append(errs, fmt.Errorf("SYNDB_SYNC_CONCURRENCY: %d is outside 1..1000", c.SyncConcurrency))
	}
	errs = append(errs,
		checkHostPort("SYNDB_TEMPORAL_ADDRESS", c.Temporal.Address),
		checkHostPort("SYNDB_CLICKHOUSE_ADDR", c.ClickHouse.Addr),
		checkNonEmpty("SYNDB_POSTGRES_DSN", c.Postgres.DSN),
		checkNonEmpty("SYNDB_P2P_KEY_FILE", c.KeyFile),
		checkPSK(c.PSK),
	)
	return errors.Join(errs...)
}

// Validate checks the node configuration and fills derived defaults.
func (c *Node) Validate() error {
	var errs []error
	if !validName(c.Name) {
		errs = append(errs, fmt.Errorf("SYNDB_NODE_NAME: %q must be 1-63 characters of a-z, 0-9 and '-'", c.Name))
	}
	if c.Hub == "" {
		errs = append(errs, errors.New("SYNDB_HUB_ADDR: the hub's multiaddr (ending in /p2p/<peer ID>) is required"))
	}
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("SYNDB_P2P_LISTEN: at least one listen address is required"))
	}
	if c.ClickHousePublicAddr == "" {
		c.ClickHousePublicAddr = c.ClickHouse.Addr
	}
	errs = append(errs,
		checkHostPort("SYNDB_FLIGHT_ADDR", c.FlightAddr),
		checkHostPort("SYNDB_CLICKHOUSE_ADDR", c.ClickHouse.Addr),
		checkHostPort("SYNDB_CLICKHOUSE_PUBLIC_ADDR", c.ClickHousePublicAddr),
		checkNonEmpty("SYNDB_P2P_KEY_FILE", c.KeyFile),
		checkPSK(c.PSK),
	)
	return errors.Join(errs...)
}

func checkPSK(s string) error {
	_, err := DecodePSK(s)
	return err
}

// validName reports whether s is a valid cluster name: a DNS label.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// ValidName reports whether s may name a cluster (a lowercase DNS label).
func ValidName(s string) bool { return validName(s) }

func checkHostPort(name, v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%s: %q is not host:port: %w", name, v, err)
	}
	return nil
}

func checkNonEmpty(name, v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("%s: must not be empty", name)
	}
	return nil
}
