// Package config holds the typed configuration of every SynDB component.
//
// Each component has one struct, loaded once from the environment (variables
// prefixed SYNDB_) and validated before use. Defaults are safe for
// production: addresses default to this machine, and there is no default
// credential (SYNDB_POSTGRES_DSN and the S3 keys must be set). The dev
// federation's values come from `syndb dev`: it passes them to the processes
// it starts, and writes them to DevEnvFile for the tool commands.
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
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/syndb/federation/internal/health"
)

// DevEnvFile is the file `syndb dev` writes with the settings it resolved
// (ports, keys). The tool commands meant for the dev federation (`syndb
// apikey`, `seed`, `schema`, `replay`) read it when present (LoadDevEnv),
// so `syndb apikey create` reaches the dev PostgreSQL wherever it landed;
// the services (`api`, `worker`, `node`, `relay`) never do.
const DevEnvFile = ".dev/syndb.env"

// Postgres configures the hub's PostgreSQL connection.
type Postgres struct {
	// DSN has no default: it holds the credentials (and the TLS mode).
	DSN string `env:"SYNDB_POSTGRES_DSN"`
}

// Validate checks the PostgreSQL settings.
func (c *Postgres) Validate() error { return checkNonEmpty("SYNDB_POSTGRES_DSN", c.DSN) }

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
	Endpoint string `env:"SYNDB_S3_ENDPOINT" envDefault:"127.0.0.1:9100"`
	// AccessKey and SecretKey have no default: they are credentials.
	AccessKey     string `env:"SYNDB_S3_ACCESS_KEY"`
	SecretKey     string `env:"SYNDB_S3_SECRET_KEY"`
	UseTLS        bool   `env:"SYNDB_S3_TLS" envDefault:"false"`
	ResultsBucket string `env:"SYNDB_S3_RESULTS_BUCKET" envDefault:"syndb-results"`
	StagingBucket string `env:"SYNDB_S3_STAGING_BUCKET" envDefault:"syndb-staging"`
	// MeshesBucket holds compartments' surface meshes, under
	// {node}/{dataset_id}/{table}/{cid}.glb.
	MeshesBucket string `env:"SYNDB_S3_MESHES_BUCKET" envDefault:"syndb-meshes"`
}

// Validate checks the object-store settings: the keys must be set.
func (c *S3) Validate() error {
	return errors.Join(checkHostPort("SYNDB_S3_ENDPOINT", c.Endpoint),
		checkNonEmpty("SYNDB_S3_ACCESS_KEY", c.AccessKey), checkNonEmpty("SYNDB_S3_SECRET_KEY", c.SecretKey))
}

// API configures `syndb api`.
type API struct {
	Addr string `env:"SYNDB_API_ADDR" envDefault:"127.0.0.1:8080"`
	// PublicURL is how clients reach the API (the base of the links it
	// hands out): http://127.0.0.1:8080 when unset, https:// under TLS.
	PublicURL string `env:"SYNDB_API_PUBLIC_URL"`
	// TLS, when set, serves the HTTP API and the Flight server over TLS.
	TLS        TLS
	Postgres   Postgres
	Temporal   Temporal
	ClickHouse ClickHouse
	// QueryUser and QueryPassword are the hub ClickHouse user federated
	// queries run as: read-only, no DDL, with a profile that caps memory,
	// time, result rows and query size. The API's other reads of the hub
	// warehouse (health, schema status) use SYNDB_CLICKHOUSE_USER.
	QueryUser     string `env:"SYNDB_CLICKHOUSE_QUERY_USER" envDefault:"syndb_query"`
	QueryPassword string `env:"SYNDB_CLICKHOUSE_QUERY_PASSWORD"`
	S3            S3
	Query         Query
	ETL           ETL
	Mesh          Mesh
	Auth          Auth
	// FlightAddr is where the hub's Arrow Flight server listens, and
	// FlightPublicAddr how clients reach it (the location in FlightInfo).
	FlightAddr       string `env:"SYNDB_API_FLIGHT_ADDR" envDefault:"127.0.0.1:50051"`
	FlightPublicAddr string `env:"SYNDB_API_FLIGHT_PUBLIC_ADDR" envDefault:"127.0.0.1:50051"`
	// SyncConcurrency bounds how many nodes a schema sync talks to at once
	// (a POST may ask for another bound).
	SyncConcurrency int `env:"SYNDB_SYNC_CONCURRENCY" envDefault:"32"`
	// ShutdownTimeout bounds how long in-flight requests may finish on stop.
	ShutdownTimeout time.Duration `env:"SYNDB_API_SHUTDOWN_TIMEOUT" envDefault:"10s"`
	Limits          Limits
	Audit           Audit
	// TrustedProxies are the proxies (CIDR ranges or addresses) whose
	// X-Forwarded-For names the client; without them the client is the
	// connection's peer, whatever the headers say.
	TrustedProxies []string `env:"SYNDB_API_TRUSTED_PROXIES" envSeparator:","`
}

// Discovery configures how a libp2p process finds and reaches its peers.
type Discovery struct {
	// Bootstrap holds the federation DHT's bootstrap peers (multiaddrs
	// ending in /p2p/<peer ID>), usually `syndb relay` processes.
	Bootstrap []string `env:"SYNDB_P2P_BOOTSTRAP" envSeparator:","`
	// MDNS announces the process on the local network and finds peers there.
	MDNS bool `env:"SYNDB_P2P_MDNS" envDefault:"true"`
	// Relays are circuit relay v2 servers (multiaddrs with /p2p/) on which a
	// process behind NAT reserves a slot and is then reached.
	Relays []string `env:"SYNDB_P2P_RELAYS" envSeparator:","`
	// Reachability is auto (detected), public, or private (behind NAT:
	// advertise relayed addresses only).
	Reachability string `env:"SYNDB_P2P_REACHABILITY" envDefault:"auto"`
	// Prefer is the transport dialled first: quic (QUIC-v1, as libp2p
	// does) or tcp (TCP with TLS 1.3, which halves the CPU time a bulk
	// transfer costs; QUIC when TCP fails or has not connected within a
	// second, p2p.TCPFirstGrace).
	Prefer string `env:"SYNDB_P2P_PREFER" envDefault:"quic"`
}

// PreferTCP says whether TCP is dialled before QUIC.
func (d Discovery) PreferTCP() bool { return d.Prefer == "tcp" }

// Validate checks the discovery settings, dropping blank list entries.
func (d *Discovery) Validate() error {
	d.Bootstrap, d.Relays = nonBlank(d.Bootstrap), nonBlank(d.Relays)
	var errs []error
	for _, a := range d.Bootstrap {
		errs = append(errs, checkPeerAddr("SYNDB_P2P_BOOTSTRAP", a))
	}
	for _, a := range d.Relays {
		errs = append(errs, checkPeerAddr("SYNDB_P2P_RELAYS", a))
	}
	switch d.Reachability {
	case "", "auto", "public", "private":
	default:
		errs = append(errs, fmt.Errorf("SYNDB_P2P_REACHABILITY: %q is not auto, public or private", d.Reachability))
	}
	switch d.Prefer {
	case "", "quic", "tcp":
	default:
		errs = append(errs, fmt.Errorf("SYNDB_P2P_PREFER: %q is not quic or tcp", d.Prefer))
	}
	return errors.Join(errs...)
}

// Relay configures `syndb relay`: a public rendezvous of the federation, a
// DHT bootstrap server and circuit relay v2 service for peers behind NAT.
type Relay struct {
	Discovery
	Listen  []string `env:"SYNDB_P2P_LISTEN" envSeparator:"," envDefault:"/ip4/127.0.0.1/udp/4000/quic-v1,/ip4/127.0.0.1/tcp/4000"`
	KeyFile string   `env:"SYNDB_P2P_KEY_FILE" envDefault:"relay.key"`
	PSK     string   `env:"SYNDB_P2P_PSK"`
	// MaxCircuitDuration and MaxCircuitData bound each relayed connection.
	// libp2p's defaults (2 minutes, 128 KiB) are too small for a schema sync
	// or a catalog; ours cover the longest message exchange.
	MaxCircuitDuration time.Duration `env:"SYNDB_RELAY_MAX_DURATION" envDefault:"30m"`
	MaxCircuitData     int64         `env:"SYNDB_RELAY_MAX_DATA" envDefault:"67108864"`
}

// Validate checks the relay configuration.
func (c *Relay) Validate() error {
	var errs []error
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("SYNDB_P2P_LISTEN: at least one listen address is required"))
	}
	if c.MaxCircuitDuration <= 0 || c.MaxCircuitData <= 0 {
		errs = append(errs, errors.New("SYNDB_RELAY_MAX_DURATION and SYNDB_RELAY_MAX_DATA must be positive"))
	}
	errs = append(errs, c.Discovery.Validate(), checkNonEmpty("SYNDB_P2P_KEY_FILE", c.KeyFile), checkPSK(c.PSK),
		checkPrivateNetwork(c.PSK, c.Discovery, ""))
	return errors.Join(errs...)
}

// Health configures the health monitor and its circuit breaker. Its
// defaults are internal/health's (DefaultHealth); the README explains them.
type Health struct {
	// Interval is the time between sweeps.
	Interval time.Duration `env:"SYNDB_HEALTH_INTERVAL"`
	// Slow is the round trip above which a node is Degraded.
	Slow time.Duration `env:"SYNDB_HEALTH_SLOW"`
	// Failures is the number of consecutive failed pings that make a node Unreachable.
	Failures int `env:"SYNDB_HEALTH_FAILURES"`
	// Successes is the number of good half-open probes an Unreachable node needs to come back.
	Successes int `env:"SYNDB_HEALTH_SUCCESSES"`
	// ProbeBackoff and MaxProbeBackoff space the half-open probes of an
	// Unreachable node: ProbeBackoff × ejections, capped.
	ProbeBackoff    time.Duration `env:"SYNDB_HEALTH_PROBE_BACKOFF"`
	MaxProbeBackoff time.Duration `env:"SYNDB_HEALTH_MAX_PROBE_BACKOFF"`
	// Concurrency bounds the pings of a sweep in flight at once.
	Concurrency int `env:"SYNDB_HEALTH_CONCURRENCY"`
	// PingTimeout bounds one ping.
	PingTimeout time.Duration `env:"SYNDB_HEALTH_PING_TIMEOUT"`
}

// DefaultHealth returns the health settings of internal/health's defaults.
func DefaultHealth() Health {
	b := health.DefaultConfig()
	return Health{
		Interval: health.DefaultInterval, Slow: b.SlowLatency, Failures: b.FailuresToEject, Successes: b.SuccessesToRestore,
		ProbeBackoff: b.ProbeBackoff, MaxProbeBackoff: b.MaxProbeBackoff,
		Concurrency: health.DefaultConcurrency, PingTimeout: health.DefaultPingTimeout,
	}
}

// Breaker returns the circuit breaker's part of the settings.
func (h *Health) Breaker() health.Config {
	return health.Config{
		SlowLatency: h.Slow, FailuresToEject: h.Failures, SuccessesToRestore: h.Successes,
		ProbeBackoff: h.ProbeBackoff, MaxProbeBackoff: h.MaxProbeBackoff,
	}
}

// Validate checks the health settings.
func (h *Health) Validate() error {
	var errs []error
	if h.Interval < 100*time.Millisecond || h.Interval > time.Hour {
		errs = append(errs, fmt.Errorf("SYNDB_HEALTH_INTERVAL: %s is outside 100ms..1h", h.Interval))
	}
	if h.Concurrency < 1 || h.Concurrency > 10000 {
		errs = append(errs, fmt.Errorf("SYNDB_HEALTH_CONCURRENCY: %d is outside 1..10000", h.Concurrency))
	}
	if h.PingTimeout <= 0 || h.PingTimeout > time.Minute {
		errs = append(errs, fmt.Errorf("SYNDB_HEALTH_PING_TIMEOUT: %s is outside 0..1m", h.PingTimeout))
	}
	if h.Slow <= 0 {
		errs = append(errs, fmt.Errorf("SYNDB_HEALTH_SLOW: %s must be positive", h.Slow))
	}
	if h.Failures < 1 || h.Successes < 1 {
		errs = append(errs, errors.New("SYNDB_HEALTH_FAILURES and SYNDB_HEALTH_SUCCESSES must be at least 1"))
	}
	if h.ProbeBackoff <= 0 || h.MaxProbeBackoff < h.ProbeBackoff {
		errs = append(errs, errors.New("SYNDB_HEALTH_PROBE_BACKOFF must be positive and at most SYNDB_HEALTH_MAX_PROBE_BACKOFF"))
	}
	return errors.Join(errs...)
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
// overriding variables that are already set. Only the tool commands meant
// for the dev federation call it (see DevEnvFile).
func LoadDevEnv() error {
	if _, err := os.Stat(DevEnvFile); err != nil {
		return nil //nolint:nilerr // a missing dev file is the normal production case
	}
	if err := godotenv.Load(DevEnvFile); err != nil {
		return fmt.Errorf("read %s: %w", DevEnvFile, err)
	}
	return nil
}

// defaulter is a configuration whose defaults come from code rather than
// envDefault tags (so they have one source).
type defaulter interface{ setDefaults() }

// Load parses T from the environment and validates it.
func Load[T any]() (T, error) {
	var c T
	if d, ok := any(&c).(defaulter); ok {
		d.setDefaults()
	}
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

// QueryClickHouse is the hub warehouse connection of federated queries:
// ClickHouse's address and database, as the query user.
func (c *API) QueryClickHouse() ClickHouse {
	ch := c.ClickHouse
	ch.User, ch.Password = c.QueryUser, c.QueryPassword
	return ch
}

// Validate checks the API configuration.
func (c *API) Validate() error {
	var concurrency error
	if c.SyncConcurrency < 1 || c.SyncConcurrency > MaxSyncConcurrency {
		concurrency = fmt.Errorf("SYNDB_SYNC_CONCURRENCY: %d is outside 1..%d", c.SyncConcurrency, MaxSyncConcurrency)
	}
	_, proxies := ParseProxies(c.TrustedProxies)
	return errors.Join(concurrency, c.Query.Validate(), c.ETL.Validate(), c.Mesh.Validate(), c.Auth.Validate(), c.TLS.Validate(), c.checkPublicURL(),
		c.Limits.Validate(), c.Audit.Validate(), proxies,
		checkHostPort("SYNDB_API_ADDR", c.Addr),
		checkHostPort("SYNDB_TEMPORAL_ADDRESS", c.Temporal.Address),
		checkHostPort("SYNDB_CLICKHOUSE_ADDR", c.ClickHouse.Addr),
		c.Postgres.Validate(),
		c.S3.Validate(),
		checkNonEmpty("SYNDB_CLICKHOUSE_QUERY_USER", c.QueryUser),
	)
}

func nonBlank(xs []string) []string {
	var out []string
	for _, x := range xs {
		if strings.TrimSpace(x) != "" {
			out = append(out, strings.TrimSpace(x))
		}
	}
	return out
}

// checkPeerAddr checks a multiaddr that ends in /p2p/<peer ID>.
func checkPeerAddr(name, s string) error {
	m, err := ma.NewMultiaddr(strings.TrimSpace(s))
	if err == nil {
		_, err = peer.AddrInfoFromP2pAddr(m)
	}
	if err != nil {
		return fmt.Errorf("%s: %q is not a multiaddr ending in /p2p/<peer ID>: %w", name, s, err)
	}
	return nil
}

func checkPSK(s string) error {
	_, err := DecodePSK(s)
	return err
}

// checkPrivateNetwork refuses QUIC peer addresses under a private-network
// key: libp2p private networks run over TCP only (the host drops its QUIC
// listen addresses), so a peer dialled over QUIC is never reached.
func checkPrivateNetwork(psk string, d Discovery, hub string) error {
	if strings.TrimSpace(psk) == "" {
		return nil
	}
	var errs []error
	check := func(name string, addrs ...string) {
		for _, a := range addrs {
			if strings.Contains(a, "/quic") {
				errs = append(errs, fmt.Errorf("%s: %q is a QUIC address, but SYNDB_P2P_PSK makes a private network, which runs over TCP only", name, a))
			}
		}
	}
	check("SYNDB_P2P_BOOTSTRAP", d.Bootstrap...)
	check("SYNDB_P2P_RELAYS", d.Relays...)
	if hub != "" {
		check("SYNDB_HUB_ADDR", hub)
	}
	return errors.Join(errs...)
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
