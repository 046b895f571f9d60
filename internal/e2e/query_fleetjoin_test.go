package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
)

// TestFleetJoinCap: a fleet-scope join whose side holds more rows than the
// join cap fails with a 400 that says so, where the same join per node
// answers; an API with the default cap answers the fleet join too.
func TestFleetJoinCap(t *testing.T) {
	routableNodes(t)
	capped := startAPIReplica(t, map[string]string{"SYNDB_QUERY_MAX_JOIN_ROWS": "50"})
	const sql = "SELECT count() AS n FROM synapse AS s JOIN neuron AS n ON s.pre_id = n.cid"
	post := func(base, scope string) (int, string) {
		t.Helper()
		body, err := json.Marshal(map[string]string{"sql": sql, "scope": scope})
		require.NoError(t, err)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/v1/query", strings.NewReader(string(body)))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+fed.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		sc := bufio.NewScanner(resp.Body)
		var first string
		if sc.Scan() {
			first = sc.Text()
		}
		return resp.StatusCode, first
	}
	status, line := post(capped, "fleet")
	require.Equal(t, http.StatusBadRequest, status, line)
	var e api.ErrorBody
	require.NoError(t, json.Unmarshal([]byte(line), &e))
	require.Contains(t, e.Error.Message, "holds more than 50 rows")

	status, perNode := post(capped, "node")
	require.Equal(t, http.StatusOK, status, perNode)
	status, fleet := post(fed.APIURL, "fleet")
	require.Equal(t, http.StatusOK, status, fleet)
	// Neuron ids are unique across the fleet: joining across nodes finds the
	// same pairs as joining each node's own rows.
	require.JSONEq(t, perNode, fleet)
}
