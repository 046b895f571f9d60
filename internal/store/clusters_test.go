package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

// TestClusterDatabaseRoundTrip: the warehouse database a node registers is
// stored and read back (one cluster, the list), a later registration
// replaces it, a row written before the column reads "syndb", and
// PostgreSQL itself refuses anything but an identifier.
func TestClusterDatabaseRoundTrip(t *testing.T) {
	t.Parallel()
	st, conn := catalogTestStore(t, "lab-old")
	ctx := t.Context()
	stored := func(t *testing.T, name string) string {
		t.Helper()
		var db string
		require.NoError(t, conn.QueryRow(ctx, `SELECT clickhouse_database FROM clusters WHERE name = $1`, name).Scan(&db))
		return db
	}
	require.Equal(t, domain.DefaultClickHouseDatabase, stored(t, "lab-old"), "rows from before the column read the agent's default")

	e, err := st.CreateCluster(ctx, "lab-c", time.Hour, "")
	require.NoError(t, err)
	reg := store.Registration{Name: "lab-c", PeerID: "peer-lab-c", Addrs: []string{}, ClickHouseAddr: "127.0.0.1:9000",
		ClickHouseDatabase: "syndb_c", AgentVersion: "dev", SchemaVersion: 4, Token: e.Token}
	for _, tc := range []struct{ name, db string }{
		{"first registration", "syndb_c"},
		{"moved to another database", "Lab_C_2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg.ClickHouseDatabase = tc.db
			c, err := st.Register(ctx, reg)
			require.NoError(t, err)
			require.Equal(t, tc.db, c.ClickHouseDatabase)
			require.Equal(t, tc.db, stored(t, "lab-c"))
			c, err = st.Cluster(ctx, "lab-c")
			require.NoError(t, err)
			require.Equal(t, tc.db, c.ClickHouseDatabase)
			all, err := st.Clusters(ctx, true)
			require.NoError(t, err)
			got := map[string]string{}
			for _, c := range all {
				got[c.Name] = c.ClickHouseDatabase
			}
			require.Equal(t, map[string]string{"lab-old": domain.DefaultClickHouseDatabase, "lab-c": tc.db}, got)
		})
	}

	for _, bad := range []string{"", "syndb.neuron", "syndb', 'x", "1abc", "a b"} {
		reg.ClickHouseDatabase = bad
		_, err := st.Register(ctx, reg)
		require.ErrorContains(t, err, "clusters_clickhouse_database_check", "database %q", bad)
		_, err = conn.Exec(ctx, `UPDATE clusters SET clickhouse_database = $1 WHERE name = 'lab-c'`, bad)
		require.ErrorContains(t, err, "clusters_clickhouse_database_check", "database %q", bad)
	}
	require.Equal(t, "Lab_C_2", stored(t, "lab-c"), "a refused write changes nothing")
}

// TestClusterFlightCertRoundTrip: the Flight certificate pin a node
// registers is stored as PostgreSQL reads it back, replaced by a later
// registration (a new certificate, or none: a plaintext listener), and
// PostgreSQL itself refuses anything but 64 lowercase hex digits.
func TestClusterFlightCertRoundTrip(t *testing.T) {
	t.Parallel()
	st, conn := catalogTestStore(t)
	ctx := t.Context()
	e, err := st.CreateCluster(ctx, "lab-tls", time.Hour, "")
	require.NoError(t, err)
	reg := store.Registration{Name: "lab-tls", PeerID: "peer-lab-tls", Addrs: []string{}, FlightAddr: "127.0.0.1:50052",
		ClickHouseDatabase: domain.DefaultClickHouseDatabase, AgentVersion: "dev", Token: e.Token}
	pinA := strings.Repeat("0a", 32)
	pinB := strings.Repeat("f1", 32)
	for _, tc := range []struct{ name, pin string }{
		{"first registration", pinA},
		{"a new certificate", pinB},
		{"plaintext again", ""},
		{"TLS again", pinA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg.FlightCertSHA256 = tc.pin
			c, err := st.Register(ctx, reg)
			require.NoError(t, err)
			require.Equal(t, tc.pin, c.FlightCertSHA256)
			var stored string
			require.NoError(t, conn.QueryRow(ctx, `SELECT flight_cert_sha256 FROM clusters WHERE name = 'lab-tls'`).Scan(&stored))
			require.Equal(t, tc.pin, stored)
			c, err = st.Cluster(ctx, "lab-tls")
			require.NoError(t, err)
			require.Equal(t, tc.pin, c.FlightCertSHA256)
			all, err := st.Clusters(ctx, true)
			require.NoError(t, err)
			require.Len(t, all, 1)
			require.Equal(t, tc.pin, all[0].FlightCertSHA256)
		})
	}
	for _, bad := range []string{strings.Repeat("0A", 32), strings.Repeat("0a", 31), strings.Repeat("0a", 33), strings.Repeat("zz", 32)} {
		reg.FlightCertSHA256 = bad
		_, err := st.Register(ctx, reg)
		require.ErrorContains(t, err, "clusters_flight_cert_sha256_check", "pin %q", bad)
	}
	c, err := st.Cluster(ctx, "lab-tls")
	require.NoError(t, err)
	require.Equal(t, pinA, c.FlightCertSHA256, "a refused write changes nothing")
}
