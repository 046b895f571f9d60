package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDefaultsAreValid(t *testing.T) {
	_, err := Load[API]()
	require.NoError(t, err)
	_, err = Load[Worker]()
	require.NoError(t, err)
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
	t.Setenv("SYNDB_CLICKHOUSE_ADDR", "127.0.0.1:9003")
	n, err := Load[Node]()
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9003", n.ClickHousePublicAddr, "public address defaults to the local one")
}

func TestBadValuesAreRefused(t *testing.T) {
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
}

func TestValidName(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{"lab-a": true, "a": true, "Lab": false, "-a": false, "a-": false, "": false, "a_b": false} {
		require.Equal(t, ok, ValidName(name), name)
	}
}

func TestCatalogIntervalIsChecked(t *testing.T) {
	w, err := Load[Worker]()
	require.NoError(t, err)
	require.Equal(t, 15*time.Minute, w.CatalogInterval)
	for _, bad := range []string{"1s", "200h", "often"} {
		t.Setenv("SYNDB_CATALOG_INTERVAL", bad)
		_, err = Load[Worker]()
		require.ErrorContains(t, err, "SYNDB_CATALOG_INTERVAL", bad)
	}
	t.Setenv("SYNDB_CATALOG_INTERVAL", "1h")
	w, err = Load[Worker]()
	require.NoError(t, err)
	require.Equal(t, time.Hour, w.CatalogInterval)
}

func TestFederatedQueriesRunAsTheQueryUser(t *testing.T) {
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
