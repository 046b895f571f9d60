package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/health"
)

// credentials sets the settings that have no default: the ones a
// deployment (or `syndb dev`) must give.
func credentials(t *testing.T) {
	t.Helper()
	t.Setenv("SYNDB_POSTGRES_DSN", "postgres://syndb:pw@db.internal:5432/syndb?sslmode=verify-full")
	t.Setenv("SYNDB_S3_ACCESS_KEY", "ak")
	t.Setenv("SYNDB_S3_SECRET_KEY", "sk")
}

func TestDefaultsAreValid(t *testing.T) {
	credentials(t)
	_, err := Load[API]()
	require.NoError(t, err)
	_, err = Load[Worker]()
	require.NoError(t, err)
}

// TestNoCredentialDefaults: without the credentials set, the hub refuses to
// start and names each one; no default holds a password, a key or a
// TLS-off DSN.
func TestNoCredentialDefaults(t *testing.T) {
	for _, k := range []string{"SYNDB_POSTGRES_DSN", "SYNDB_S3_ACCESS_KEY", "SYNDB_S3_SECRET_KEY"} {
		t.Setenv(k, "")
	}
	_, err := Load[API]()
	require.Error(t, err)
	w, werr := Load[Worker]()
	require.Error(t, werr)
	for _, k := range []string{"SYNDB_POSTGRES_DSN", "SYNDB_S3_ACCESS_KEY", "SYNDB_S3_SECRET_KEY"} {
		require.ErrorContains(t, err, k)
		require.ErrorContains(t, werr, k)
	}
	_, err = Load[Postgres]()
	require.ErrorContains(t, err, "SYNDB_POSTGRES_DSN")

	// Every envDefault of every component, read from the struct tags: none
	// holds the dev federation's secret, its password or sslmode=disable.
	var walk func(reflect.Type)
	seen := 0
	walk = func(rt reflect.Type) {
		for f := range rt.Fields() {
			if d, ok := f.Tag.Lookup("envDefault"); ok {
				seen++
				for _, bad := range []string{"syndb-dev-secret", "sslmode=disable", "syndb:syndb@"} {
					require.NotContains(t, d, bad, "%s.%s", rt.Name(), f.Name)
				}
				require.NotContains(t, f.Tag.Get("env"), "SECRET", "%s.%s has a default", rt.Name(), f.Name)
				require.NotContains(t, f.Tag.Get("env"), "PASSWORD", "%s.%s has a default", rt.Name(), f.Name)
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type)
			}
		}
	}
	for _, c := range []any{API{}, Worker{}, Node{}, Relay{}} {
		walk(reflect.TypeOf(c))
	}
	require.Greater(t, seen, 30, "the walk reads the tags")
	require.Empty(t, w.S3.SecretKey)
}

// TestHealthDefaultsComeFromHealth: the worker's health settings default to
// internal/health's values (the one source), hand-listed here, and an
// environment variable still overrides one.
func TestHealthDefaultsComeFromHealth(t *testing.T) {
	credentials(t)
	w, err := Load[Worker]()
	require.NoError(t, err)
	require.Equal(t, Health{Interval: 10 * time.Second, Slow: time.Second, Failures: 3, Successes: 2,
		ProbeBackoff: 30 * time.Second, MaxProbeBackoff: 5 * time.Minute, Concurrency: 64, PingTimeout: 5 * time.Second}, w.Health)
	require.Equal(t, health.DefaultConfig(), w.Health.Breaker())
	require.Equal(t, health.DefaultInterval, w.Health.Interval)
	for f := range reflect.TypeOf(Health{}).Fields() {
		_, ok := f.Tag.Lookup("envDefault")
		require.False(t, ok, "Health.%s has its own default", f.Name)
	}

	t.Setenv("SYNDB_HEALTH_FAILURES", "5")
	t.Setenv("SYNDB_HEALTH_INTERVAL", "2s")
	w, err = Load[Worker]()
	require.NoError(t, err)
	require.Equal(t, 5, w.Health.Failures)
	require.Equal(t, 2*time.Second, w.Health.Interval)
	require.Equal(t, 2, w.Health.Successes, "the others keep their defaults")
}

func TestNodeNeedsNameAndAWayToTheHub(t *testing.T) {
	t.Setenv("SYNDB_NODE_NAME", "")
	t.Setenv("SYNDB_HUB_ADDR", "")
	t.Setenv("SYNDB_P2P_MDNS", "false")
	_, err := Load[Node]()
	require.ErrorContains(t, err, "SYNDB_NODE_NAME")
	require.ErrorContains(t, err, "no way to find the hub")

	t.Setenv("SYNDB_NODE_NAME", "lab-a")
	t.Setenv("SYNDB_HUB_ADDR", "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW")
	_, err = Load[Node]()
	require.ErrorContains(t, err, "SYNDB_HUB_ADDR", "a hub address must name the peer")

	// mDNS alone, with no configuration, is a way in.
	t.Setenv("SYNDB_HUB_ADDR", "")
	t.Setenv("SYNDB_P2P_MDNS", "true")
	_, err = Load[Node]()
	require.NoError(t, err)

	t.Setenv("SYNDB_P2P_BOOTSTRAP", "/ip4/127.0.0.1/udp/4000/quic-v1")
	_, err = Load[Node]()
	require.ErrorContains(t, err, "SYNDB_P2P_BOOTSTRAP")
	t.Setenv("SYNDB_P2P_BOOTSTRAP", "/ip4/127.0.0.1/udp/4000/quic-v1/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE")
	t.Setenv("SYNDB_HUB_ID", "not-a-peer")
	_, err = Load[Node]()
	require.ErrorContains(t, err, "SYNDB_HUB_ID")
	t.Setenv("SYNDB_HUB_ID", "12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE")
	t.Setenv("SYNDB_P2P_REACHABILITY", "sometimes")
	_, err = Load[Node]()
	require.ErrorContains(t, err, "SYNDB_P2P_REACHABILITY")
	t.Setenv("SYNDB_P2P_REACHABILITY", "private")
	t.Setenv("SYNDB_P2P_PREFER", "udp")
	_, err = Load[Node]()
	require.ErrorContains(t, err, "SYNDB_P2P_PREFER")
	t.Setenv("SYNDB_P2P_PREFER", "")
	n, err := Load[Node]()
	require.NoError(t, err)
	require.False(t, n.PreferTCP(), "QUIC is dialled first by default")
	t.Setenv("SYNDB_P2P_PREFER", "tcp")
	t.Setenv("SYNDB_CLICKHOUSE_ADDR", "127.0.0.1:9003")
	n, err = Load[Node]()
	require.NoError(t, err)
	require.True(t, n.PreferTCP())
	require.Equal(t, "127.0.0.1:9003", n.ClickHousePublicAddr, "public address defaults to the local one")
}

func TestBadValuesAreRefused(t *testing.T) {
	credentials(t)
	t.Setenv("SYNDB_API_ADDR", "no-port")
	_, err := Load[API]()
	require.ErrorContains(t, err, "SYNDB_API_ADDR")
	t.Setenv("SYNDB_API_ADDR", "127.0.0.1:8080")
	t.Setenv("SYNDB_SYNC_CONCURRENCY", "0")
	_, err = Load[API]()
	require.ErrorContains(t, err, "SYNDB_SYNC_CONCURRENCY")
	t.Setenv("SYNDB_SYNC_CONCURRENCY", "many")
	_, err = Load[API]()
	require.ErrorContains(t, err, "SYNDB_SYNC_CONCURRENCY")
	t.Setenv("SYNDB_SYNC_CONCURRENCY", "32")
	t.Setenv("SYNDB_NODE_NAME", "lab-a")
	t.Setenv("SYNDB_HUB_ADDR", "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooWGzBGLfUq2zGDxgm7PjYkYEi9RUqoLuRCFaXd3gEBQzK4")
	t.Setenv("SYNDB_NODE_ANSWER_DELAY", "-1s")
	_, err = Load[Node]()
	require.ErrorContains(t, err, "SYNDB_NODE_ANSWER_DELAY")
	t.Setenv("SYNDB_NODE_ANSWER_DELAY", "0s")
	for db, ok := range map[string]bool{"syndb_c": true, "syndb-c": false, "syndb.neuron": false, "9lives": false} {
		t.Setenv("SYNDB_CLICKHOUSE_DATABASE", db)
		_, err = Load[Node]()
		if ok {
			require.NoError(t, err, db)
			continue
		}
		require.ErrorContains(t, err, "SYNDB_CLICKHOUSE_DATABASE", db)
	}
}

func TestValidName(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{"lab-a": true, "a": true, "Lab": false, "-a": false, "a-": false, "": false, "a_b": false} {
		require.Equal(t, ok, ValidName(name), name)
	}
}

func TestScheduleIntervalsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		env string
		get func(Worker) time.Duration
	}{
		{"SYNDB_CATALOG_INTERVAL", func(w Worker) time.Duration { return w.CatalogInterval }},
		{"SYNDB_BENCHMARK_INTERVAL", func(w Worker) time.Duration { return w.BenchmarkInterval }},
	} {
		t.Run(tc.env, func(t *testing.T) {
			credentials(t)
			w, err := Load[Worker]()
			require.NoError(t, err)
			require.Equal(t, 15*time.Minute, tc.get(w))
			for _, bad := range []string{"1s", "200h", "often"} {
				t.Setenv(tc.env, bad)
				_, err = Load[Worker]()
				require.ErrorContains(t, err, tc.env, bad)
			}
			t.Setenv(tc.env, "1h")
			w, err = Load[Worker]()
			require.NoError(t, err)
			require.Equal(t, time.Hour, tc.get(w))
		})
	}
}

func TestFederatedQueriesRunAsTheQueryUser(t *testing.T) {
	credentials(t)
	t.Setenv("SYNDB_CLICKHOUSE_USER", "admin")
	t.Setenv("SYNDB_CLICKHOUSE_PASSWORD", "admin-secret")
	t.Setenv("SYNDB_CLICKHOUSE_QUERY_PASSWORD", "query-secret")
	c, err := Load[API]()
	require.NoError(t, err)
	q := c.QueryClickHouse()
	require.Equal(t, ClickHouse{Addr: c.ClickHouse.Addr, User: "syndb_query", Password: "query-secret", Database: "syndb"}, q)
	require.Equal(t, "admin", c.ClickHouse.User, "the API's other reads keep the admin user")

	t.Setenv("SYNDB_CLICKHOUSE_QUERY_USER", " ")
	_, err = Load[API]()
	require.ErrorContains(t, err, "SYNDB_CLICKHOUSE_QUERY_USER")
}

func TestPrivateNetworkRefusesQUICPeers(t *testing.T) {
	credentials(t)
	const psk = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	const id = "12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE"
	t.Setenv("SYNDB_NODE_NAME", "lab-a")
	t.Setenv("SYNDB_HUB_ADDR", "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/"+id)
	_, err := Load[Node]()
	require.NoError(t, err, "without a key QUIC is fine")

	t.Setenv("SYNDB_P2P_PSK", psk)
	_, err = Load[Node]()
	require.ErrorContains(t, err, "SYNDB_HUB_ADDR")
	require.ErrorContains(t, err, "TCP only")
	t.Setenv("SYNDB_HUB_ADDR", "/ip4/127.0.0.1/tcp/4001/p2p/"+id)
	_, err = Load[Node]()
	require.NoError(t, err)

	t.Setenv("SYNDB_P2P_BOOTSTRAP", "/ip4/127.0.0.1/udp/4000/quic-v1/p2p/"+id)
	_, err = Load[Worker]()
	require.ErrorContains(t, err, "SYNDB_P2P_BOOTSTRAP")
	_, err = Load[Relay]()
	require.ErrorContains(t, err, "SYNDB_P2P_BOOTSTRAP")
	t.Setenv("SYNDB_P2P_BOOTSTRAP", "/ip4/127.0.0.1/tcp/4000/p2p/"+id)
	_, err = Load[Worker]()
	require.NoError(t, err)
}

func TestQuerySettingsAreChecked(t *testing.T) {
	credentials(t)
	for _, tc := range []struct{ key, value string }{
		{"SYNDB_QUERY_MAX_CONNS", "2"},
		{"SYNDB_QUERY_CONN_WAIT", "0s"},
		{"SYNDB_QUERY_REMOTE_CONNECT_TIMEOUT", "10ms"},
		{"SYNDB_QUERY_REMOTE_RECEIVE_TIMEOUT", "2m"},
		{"SYNDB_QUERY_PROBE_TIMEOUT", "0s"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			t.Setenv(tc.key, tc.value)
			_, err := Load[API]()
			require.ErrorContains(t, err, tc.key)
		})
	}
	c, err := Load[API]()
	require.NoError(t, err)
	require.GreaterOrEqual(t, c.Query.MaxConns, 32, "room for 8 queries at once and their probes")
	require.Less(t, c.Query.RemoteReceiveTimeout, c.Query.Timeout)
}

// TestDataPlane: the node's data plane defaults to libp2p, is libp2p or
// direct, and anything else is refused by name.
func TestDataPlane(t *testing.T) {
	t.Setenv("SYNDB_NODE_NAME", "lab-a")
	t.Setenv("SYNDB_HUB_ADDR", "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooWGzBGLfUq2zGDxgm7PjYkYEi9RUqoLuRCFaXd3gEBQzK4")
	c, err := Load[Node]()
	require.NoError(t, err)
	require.Equal(t, DataPlaneLibp2p, c.DataPlane)
	require.Equal(t, "127.0.0.1:50052", c.FlightAddr, "the Flight TCP listener stays on loopback by default")
	cases := map[string]string{"libp2p": "", "direct": "", "": "", "tcp": "SYNDB_DATA_PLANE", "LIBP2P": "SYNDB_DATA_PLANE"}
	for plane, wantErr := range cases {
		t.Setenv("SYNDB_DATA_PLANE", plane)
		c, err := Load[Node]()
		if wantErr != "" {
			require.ErrorContains(t, err, wantErr, plane)
			continue
		}
		require.NoError(t, err, plane)
		if plane == "" {
			plane = DataPlaneLibp2p // set but empty: the default
		}
		require.Equal(t, plane, c.DataPlane)
	}
}

// TestFlightTLSFiles: the Flight listener's certificate and key come
// together or not at all.
func TestFlightTLSFiles(t *testing.T) {
	t.Setenv("SYNDB_NODE_NAME", "lab-a")
	t.Setenv("SYNDB_HUB_ADDR", "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooWGzBGLfUq2zGDxgm7PjYkYEi9RUqoLuRCFaXd3gEBQzK4")
	for _, tc := range []struct {
		name, cert, key string
		ok              bool
	}{
		{"neither: plaintext", "", "", true},
		{"both", "flight.crt", "flight.key", true},
		{"certificate only", "flight.crt", "", false},
		{"key only", "", "flight.key", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SYNDB_FLIGHT_TLS_CERT", tc.cert)
			t.Setenv("SYNDB_FLIGHT_TLS_KEY", tc.key)
			c, err := Load[Node]()
			if !tc.ok {
				require.ErrorContains(t, err, "SYNDB_FLIGHT_TLS_CERT and SYNDB_FLIGHT_TLS_KEY: give both")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.cert, c.FlightTLSCert)
			require.Equal(t, tc.key, c.FlightTLSKey)
		})
	}
}

// TestDataPlaneSettings: SQL over libp2p is the default and needs gateways;
// the direct plane needs none; the worker's gateway address is checked.
func TestDataPlaneSettings(t *testing.T) {
	credentials(t)
	c, err := Load[API]()
	require.NoError(t, err)
	require.Equal(t, DataPlaneLibp2p, c.Query.DataPlane)
	require.Equal(t, []string{"127.0.0.1:9010"}, c.Query.Gateways)
	w, err := Load[Worker]()
	require.NoError(t, err)
	require.Equal(t, c.Query.Gateways[0], w.GatewayAddr, "the API's default gateway is the worker's")

	for _, tc := range []struct {
		name string
		env  map[string]string
		err  string // "" when accepted
	}{
		{"two gateways", map[string]string{"SYNDB_QUERY_GATEWAYS": "gw1:9010, gw2:9010"}, ""},
		{"no gateway", map[string]string{"SYNDB_QUERY_GATEWAYS": " , "}, "SYNDB_QUERY_GATEWAYS"},
		{"bad gateway", map[string]string{"SYNDB_QUERY_GATEWAYS": "gw1"}, "SYNDB_QUERY_GATEWAYS"},
		{"direct needs none", map[string]string{"SYNDB_DATA_PLANE": "direct", "SYNDB_QUERY_GATEWAYS": " "}, ""},
		{"unknown plane", map[string]string{"SYNDB_DATA_PLANE": "carrier-pigeon"}, "SYNDB_DATA_PLANE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := Load[API]()
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			if tc.name == "two gateways" {
				require.Equal(t, []string{"gw1:9010", "gw2:9010"}, c.Query.Gateways)
			}
		})
	}
	t.Run("worker gateway address", func(t *testing.T) {
		t.Setenv("SYNDB_GATEWAY_ADDR", "nowhere")
		_, err := Load[Worker]()
		require.ErrorContains(t, err, "SYNDB_GATEWAY_ADDR")
	})
}

// TestNodeGatewayAddrDefaultsToClickHouse: the agent connects the hub's
// connections to its ClickHouse unless told another address.
func TestNodeGatewayAddrDefaultsToClickHouse(t *testing.T) {
	n := Node{Name: "lab-a", Hub: "", Listen: []string{"/ip4/127.0.0.1/tcp/4002"}, KeyFile: "node.key", FlightAddr: "127.0.0.1:50052",
		Discovery: Discovery{MDNS: true}, ClickHouse: ClickHouse{Addr: "127.0.0.1:9003", Database: "syndb"}}
	require.NoError(t, n.Validate())
	require.Equal(t, "127.0.0.1:9003", n.GatewayAddr)
	n.GatewayAddr = "bad"
	require.ErrorContains(t, n.Validate(), "SYNDB_CLICKHOUSE_GATEWAY_ADDR")
}

// TestAPITLS: the API's certificate and key come together or not at all,
// and the public URL's scheme follows them: https:// by default under TLS,
// and a plain http:// one is refused there.
func TestAPITLS(t *testing.T) {
	credentials(t)
	for _, tc := range []struct {
		name, cert, key, publicURL string
		// wantURL is the public URL loaded; wantErr the refusal.
		wantURL, wantErr string
	}{
		{name: "neither: plaintext", wantURL: "http://127.0.0.1:8080"},
		{name: "both", cert: "api.crt", key: "api.key", wantURL: "https://127.0.0.1:8080"},
		{name: "both, with its public URL", cert: "api.crt", key: "api.key", publicURL: "https://hub.example.org",
			wantURL: "https://hub.example.org"},
		{name: "plaintext behind a TLS proxy", publicURL: "https://hub.example.org", wantURL: "https://hub.example.org"},
		{name: "certificate only", cert: "api.crt", wantErr: "SYNDB_TLS_CERT and SYNDB_TLS_KEY: give both"},
		{name: "key only", key: "api.key", wantErr: "SYNDB_TLS_CERT and SYNDB_TLS_KEY: give both"},
		{name: "TLS with an http:// public URL", cert: "api.crt", key: "api.key", publicURL: "http://hub.example.org:8080",
			wantErr: "SYNDB_API_PUBLIC_URL: \"http://hub.example.org:8080\" is plain HTTP"},
		{name: "a public URL that is no URL", publicURL: "hub.example.org", wantErr: "is not an http:// or https:// URL"},
		{name: "another scheme", publicURL: "ftp://hub.example.org", wantErr: "is not an http:// or https:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SYNDB_TLS_CERT", tc.cert)
			t.Setenv("SYNDB_TLS_KEY", tc.key)
			t.Setenv("SYNDB_API_PUBLIC_URL", tc.publicURL)
			c, err := Load[API]()
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.cert != "", c.TLS.Enabled())
			require.Equal(t, TLS{Cert: tc.cert, Key: tc.key}, c.TLS)
			require.Equal(t, tc.wantURL, c.PublicURL)
		})
	}
}

// TestLimitsAreChecked: the per-key limits, the audit buffer, the query
// caps and the trusted proxies are refused by name when out of range;
// their defaults are valid and a proxy is an address or a CIDR range.
func TestLimitsAreChecked(t *testing.T) {
	credentials(t)
	for _, tc := range []struct{ key, value string }{
		{"SYNDB_KEY_RATE", "0"},
		{"SYNDB_KEY_RATE", "-1"},
		{"SYNDB_KEY_RATE", "NaN"},
		{"SYNDB_KEY_BURST", "0"},
		{"SYNDB_KEY_MAX_QUERIES", "0"},
		{"SYNDB_KEY_MAX_QUERIES", "10001"},
		{"SYNDB_AUDIT_BUFFER", "1"},
		{"SYNDB_QUERY_MAX_MEMORY", "1000"},
		{"SYNDB_QUERY_MAX_RESULT_BYTES", "0"},
		{"SYNDB_API_TRUSTED_PROXIES", "10.0.0.0/8,proxy.example"},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			t.Setenv(tc.key, tc.value)
			_, err := Load[API]()
			require.ErrorContains(t, err, tc.key)
		})
	}
	c, err := Load[API]()
	require.NoError(t, err)
	require.Equal(t, Limits{KeyRate: 50, KeyBurst: 100, KeyMaxQueries: 16}, c.Limits)
	require.Equal(t, int64(1_000_000_000), c.Query.MaxMemory)
	require.Equal(t, int64(1_000_000_000), c.Query.MaxResultBytes)
	nets, err := ParseProxies([]string{" 10.1.0.0/16", "192.0.2.7", "2001:db8::1", ""})
	require.NoError(t, err)
	var got []string
	for _, n := range nets {
		got = append(got, n.String())
	}
	require.Equal(t, []string{"10.1.0.0/16", "192.0.2.7/32", "2001:db8::1/128"}, got)
}
