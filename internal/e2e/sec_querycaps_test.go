package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/store"
)

// loggedSettings polls conn's system.query_log for a query that where
// selects (over query_id, initial_query_id, user, is_initial_query, type,
// query) and returns the settings ClickHouse ran it with, and its
// exception.
func loggedSettings(t *testing.T, conn driver.Conn, where string, args ...any) (map[string]string, string) {
	t.Helper()
	var (
		names, values []string
		exception     string
	)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		if err := conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
			return err
		}
		rows, err := conn.Query(ctx, "SELECT Settings.Names, Settings.Values, exception FROM system.query_log WHERE "+where+
			" ORDER BY event_time DESC, type DESC LIMIT 1", args...)
		if err != nil {
			return err
		}
		defer func() { _ = rows.Close() }()
		if !rows.Next() {
			return fmt.Errorf("no query_log row where %s", where)
		}
		return rows.Scan(&names, &values, &exception)
	}))
	out := make(map[string]string, len(names))
	for i, n := range names {
		out[n] = values[i]
	}
	return out, exception
}

// TestSecQueryCaps: on an API replica with a 1,024-byte result cap and
// 500 MB of memory, a query whose result is larger fails with a 400
// result_too_large naming the cap, and the hub's ClickHouse, which ran it
// with exactly those caps (its own query_log says so), stays up and
// answers the next query. That query's share on lab-a ran as the lab's
// gateway user with the gateway profile's caps, not the hub's (lab-a's
// query_log says so): the lab's caps hold there whatever the hub sends.
func TestSecQueryCaps(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	replica := startAPIReplica(t, map[string]string{"SYNDB_QUERY_MAX_RESULT_BYTES": "1024", "SYNDB_QUERY_MAX_MEMORY": "500000000"})
	k := newKey(t, "caps", store.RoleReader)
	hub := hubConn(t)

	status, h, raw := callAt(t, replica, k.key, http.MethodPost, "/v1/query", `{"sql": "SELECT cid, neuron_type FROM neuron"}`)
	requireError(t, http.StatusBadRequest, status, raw, "result_too_large", "a result over the cap")
	var eb api.ErrorBody
	require.NoError(t, json.Unmarshal(raw, &eb))
	require.Contains(t, eb.Error.Message, "SYNDB_QUERY_MAX_RESULT_BYTES")
	require.Contains(t, eb.Error.Message, "1024 bytes")
	capped := h.Get(api.HeaderQueryID)
	require.NotEmpty(t, capped)
	set, exception := loggedSettings(t, hub, "query_id = ? AND type > 2", capped)
	require.Contains(t, exception, "Code: 396", "the hub's ClickHouse stopped it at the result cap")
	require.Equal(t, "1024", set["max_result_bytes"])
	require.Equal(t, "500000000", set["max_memory_usage"])
	require.Equal(t, "1000000", set["max_result_rows"])
	require.Equal(t, "throw", set["result_overflow_mode"])

	// The hub's ClickHouse is up and answers the next query.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, fed.Stack.Hub.Ready(ctx))
	status, h, raw = callAt(t, replica, k.key, http.MethodPost, "/v1/query", `{"sql": "SELECT count() AS n FROM neuron"}`)
	require.Equal(t, http.StatusOK, status, string(raw))
	rows, _, err := decodeQueryLines(bytes.NewReader(raw))
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.InDelta(t, float64(nodeCount(t, "lab-a", "neuron")+nodeCount(t, "lab-b", "neuron")), rows[0]["n"], 0)

	// lab-a's share of it ran with the gateway user's profile.
	id := h.Get(api.HeaderQueryID)
	node, _ := loggedSettings(t, nodeConn(t, "lab-a"), "initial_query_id = ? AND is_initial_query = 0 AND user = ? AND type = 2 "+
		"AND query NOT LIKE 'DESC%'", id, devstack.GatewayUser)
	for _, s := range devstack.GatewayProfile {
		require.Equal(t, s.Value, node[s.Name], "lab-a ran its share with the gateway profile's %s", s.Name)
	}
	require.NotEqual(t, "500000000", node["max_memory_usage"], "the hub's memory cap did not reach the node")
	require.NotEqual(t, "1024", node["max_result_bytes"], "nor its result cap")
}
