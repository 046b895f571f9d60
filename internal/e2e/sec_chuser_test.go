package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/migrate"
)

// TestSecFederatedQueriesRunAsTheQueryUser: /v1/query reaches the hub's
// ClickHouse as the read-only query user (its system.query_log says so),
// and that user cannot change the hub.
func TestSecFederatedQueriesRunAsTheQueryUser(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	ctx := t.Context()
	hub, err := clickhouse.Open(ctx, config.ClickHouse{Addr: fed.Stack.Hub.Addr(), User: "default", Database: "syndb"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = hub.Close() })

	alias := fmt.Sprintf("probe_%d", time.Now().UnixNano())
	res := runQuery(t, fmt.Sprintf(`{"sql": "SELECT count() AS %s FROM neuron"}`, alias))
	require.Equal(t, http.StatusOK, res.status, "%+v", res.err)
	want := nodeCount(t, "lab-a", "neuron") + nodeCount(t, "lab-b", "neuron")
	require.Len(t, res.rows, 1)
	require.InDelta(t, float64(want), res.rows[0][alias], 0)

	// The server logs a query once it finished it, which may be just after
	// the API read its end: poll.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		if !assert.NoError(ct, hub.Exec(ctx, "SYSTEM FLUSH LOGS")) {
			return
		}
		// type 2 is QueryFinish (a number on 18.16, an enum later).
		rows, err := hub.Query(ctx, "SELECT user, countIf(position(query, 'remote(') > 0) FROM system.query_log "+
			"WHERE type = 2 AND position(query, '"+alias+"') > 0 AND position(query, 'system.query_log') = 0 GROUP BY user")
		if !assert.NoError(ct, err) {
			return
		}
		defer func() { _ = rows.Close() }()
		users := map[string]uint64{}
		for rows.Next() {
			var (
				u string
				n uint64
			)
			assert.NoError(ct, rows.Scan(&u, &n))
			users[u] = n
		}
		assert.NoError(ct, rows.Err())
		assert.Equal(ct, map[string]uint64{fed.Env["SYNDB_CLICKHOUSE_QUERY_USER"]: 1}, users,
			"the federated query ran once, as the query user, through remote()")
	}, 30*time.Second, 200*time.Millisecond)

	// The same user, straight to the hub's ClickHouse, changes nothing.
	q, err := clickhouse.Dial(ctx, config.ClickHouse{Addr: fed.Stack.Hub.Addr(), User: fed.Env["SYNDB_CLICKHOUSE_QUERY_USER"],
		Password: fed.Env["SYNDB_CLICKHOUSE_QUERY_PASSWORD"], Database: "syndb"}, clickhouse.DefaultPool)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	for _, sql := range []string{
		"CREATE TABLE sec_chuser_probe (x UInt8) ENGINE = Log",
		"ALTER TABLE " + migrate.LedgerTable + " DELETE WHERE 0",
		"SET readonly = 0",
	} {
		err := q.Exec(ctx, sql)
		require.True(t, clickhouse.IsCode(err, 164), "%s: %v", sql, err) // READONLY
	}
	var tables uint64
	require.NoError(t, hub.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = 'syndb' AND name = 'sec_chuser_probe'").Scan(&tables))
	require.Zero(t, tables)
}
