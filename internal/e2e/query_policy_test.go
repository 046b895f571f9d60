package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/health"
)

// TestQueryCoveragePolicy: a query that cannot read every node it names
// answers from the others by default, and fails with 409 and the reasons
// when its policy asks for more than it can get.
func TestQueryCoveragePolicy(t *testing.T) {
	waitHealth(t, "lab-a", health.Healthy, time.Minute)
	const sql = `SELECT count() AS n FROM neuron`
	want := nodeCount(t, "lab-a", "neuron")
	for _, tc := range []struct {
		partial string
		status  int
	}{
		{`"allow"`, http.StatusOK},
		{`"deny"`, http.StatusConflict},
		{`{"min_nodes": 1}`, http.StatusOK},
		{`{"min_nodes": 2}`, http.StatusConflict},
		{`{"min_fraction": 0.5}`, http.StatusOK},
		{`{"min_fraction": 0.75}`, http.StatusConflict},
	} {
		res := runQuery(t, `{"sql": "`+sql+`", "nodes": ["lab-a", "lab-gone"], "partial": `+tc.partial+`}`)
		require.Equal(t, tc.status, res.status, tc.partial)
		if tc.status == http.StatusConflict {
			require.Contains(t, res.err.Error.Message, "lab-gone (not_registered)", tc.partial)
			continue
		}
		require.Len(t, res.rows, 1)
		require.EqualValues(t, want, res.rows[0]["n"], tc.partial)
		require.Equal(t, api.QueryCoverage{Nodes: 1, Of: 2, Fraction: 0.5}, res.meta.Coverage)
		require.Equal(t, []string{"lab-a"}, res.meta.Included)
	}
}

// TestQueryExplain: explain names the nodes a query would read and the
// query each of them answers, against each node's own registry entry, and
// runs nothing.
func TestQueryExplain(t *testing.T) {
	routableNodes(t)
	body := `{"sql": "SELECT dataset_id, count(), avg(voxel_volume) FROM neuron WHERE voxel_volume > 0.1 GROUP BY dataset_id", "nodes": ["lab-a", "lab-b", "lab-gone"]}`
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, fed.APIURL+"/v1/query/explain", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+fed.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var ex api.ExplainResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ex))
	require.ElementsMatch(t, []string{"lab-a", "lab-b"}, ex.Included)
	require.Len(t, ex.Excluded, 1)
	require.Equal(t, "lab-gone", ex.Excluded[0].Name)
	require.True(t, ex.Aggregate)
	require.Equal(t, []string{"neuron"}, ex.Tables)
	// SQL over libp2p: every share reads the gateways, logged in as its node.
	gateways := strings.ReplaceAll(fed.Env["SYNDB_QUERY_GATEWAYS"], ",", "|")
	require.Len(t, ex.Nodes, 2)
	for _, nq := range ex.Nodes {
		require.Contains(t, nq.SQL, "remote('"+gateways+"', '"+listedCluster(t, nq.Node).ClickHouseDatabase+"', 'neuron', '"+nq.Node+"', ")
		require.Contains(t, nq.SQL, "avgState(voxel_volume)")
		require.Contains(t, nq.SQL, "WHERE voxel_volume > 0.1")
		for _, other := range ex.Included {
			if other != nq.Node {
				require.NotContains(t, nq.SQL, "'"+other+"'")
			}
		}
	}
	require.Contains(t, ex.Merge, "avgMerge(")
	require.Contains(t, ex.Merge, "UNION ALL")
	require.Contains(t, ex.Merge, "{lab-a}")
	require.Contains(t, ex.Merge, "{lab-b}")
}
