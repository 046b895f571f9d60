package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/schemas"
)

// TestQueryReadsEachNodesDatabase: two nodes whose warehouses are different
// databases of one ClickHouse server (lab-a's syndb, and a test node's own)
// hold different rows, and a federated query reads each node's own: per
// node, the count through /v1/query is the count run straight on that
// database. The registry reports each node's database.
func TestQueryReadsEachNodesDatabase(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(t, err)
	syncFleet(t) // the fleet's target is the head: the new node is caught up to it

	const name, db = "lab-db", "syndb_lab_db"
	chAddr := startExtraNode(t, name, db, nil)
	require.Equal(t, fed.Stack.Nodes["lab-a"].Addr(), chAddr, "both warehouses are on lab-a's ClickHouse")
	conn, err := clickhouse.Open(t.Context(), config.ClickHouse{Addr: chAddr, User: "default", Database: db})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		if v, err := migrate.Version(ctx, conn); err != nil || v < len(migs) {
			return fmt.Errorf("%s at version %d of %d (%v)", db, v, len(migs), err)
		}
		if c := listedCluster(t, name); c.SchemaVersion < len(migs) {
			return fmt.Errorf("registry has %s at version %d of %d", name, c.SchemaVersion, len(migs))
		}
		return nil
	}))
	waitHealth(t, name, health.Healthy, 2*time.Minute)

	// The registry names each node's database, under its snake_case key.
	require.Equal(t, domain.DefaultClickHouseDatabase, listedCluster(t, "lab-a").ClickHouseDatabase)
	require.Equal(t, domain.DefaultClickHouseDatabase, listedCluster(t, "lab-b").ClickHouseDatabase)
	require.Equal(t, db, listedCluster(t, name).ClickHouseDatabase)
	status, raw := apiDo(t, http.MethodGet, "/v1/federation/clusters", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Contains(t, string(raw), `"clickhouse_database":"`+db+`"`)

	// The test node gets a third of lab-a's neurons, copied on the server.
	labA := nodeCount(t, "lab-a", "neuron")
	require.Greater(t, labA, uint64(3))
	want := labA / 3
	require.NoError(t, conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.neuron SELECT * FROM syndb.neuron
		WHERE cid IN (SELECT cid FROM syndb.neuron ORDER BY cid LIMIT %d)`, db, want)))

	// Oracle: each database counted straight on its ClickHouse.
	direct := func(addr, database string) uint64 {
		t.Helper()
		c, err := clickhouse.Open(t.Context(), config.ClickHouse{Addr: addr, User: "default", Database: database})
		require.NoError(t, err)
		defer func() { _ = c.Close() }()
		var n uint64
		require.NoError(t, c.QueryRow(t.Context(), "SELECT count() FROM "+database+".neuron").Scan(&n))
		return n
	}
	oracle := map[string]uint64{
		"lab-a": direct(chAddr, "syndb"),
		"lab-b": direct(fed.Stack.Nodes["lab-b"].Addr(), "syndb"),
		name:    direct(chAddr, db),
	}
	require.Equal(t, want, oracle[name])
	require.NotEqual(t, oracle["lab-a"], oracle[name], "the two databases on one server hold different data")

	res := runQuery(t, queryBody(t, "SELECT _node, count() AS n FROM neuron GROUP BY _node ORDER BY _node", "lab-a", "lab-b", name))
	require.Equal(t, http.StatusOK, res.status, "%+v", res.err)
	require.ElementsMatch(t, []string{"lab-a", "lab-b", name}, res.meta.Included)
	got := map[string]uint64{}
	for _, r := range res.rows {
		got[r["_node"].(string)] = uint64(r["n"].(float64))
	}
	require.Equal(t, oracle, got)
}
