package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/health"
)

// TestFederatedQueryOverLibp2p: the federation's API compiles remote()
// through the worker's gateway (SQL over libp2p, the default data plane),
// and each node's ClickHouse runs its share as the lab's local gateway
// user, not as the user a direct remote() would log in as.
func TestFederatedQueryOverLibp2p(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	res := runQuery(t, `{"sql": "SELECT count() AS n, uniqExact(neuron_type) AS types FROM neuron WHERE voxel_volume >= 0"}`)
	require.Equal(t, http.StatusOK, res.status, "%+v", res.err)
	require.InDelta(t, float64(nodeCount(t, "lab-a", "neuron")+nodeCount(t, "lab-b", "neuron")), res.rows[0]["n"], 0)
	for _, node := range []string{"lab-a", "lab-b"} {
		conn := nodeConn(t, node)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		err := pollUntil(ctx, func() error {
			var n uint64
			if err := conn.QueryRow(ctx, "SELECT count() FROM system.query_log WHERE user = ? AND query LIKE '%voxel_volume >= 0%'",
				devstack.GatewayUser).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("no query of %s on %s yet", devstack.GatewayUser, node)
			}
			return nil
		})
		cancel()
		require.NoError(t, err, "%s ran its share as the gateway user", node)
	}
}

// BenchmarkFederatedQueryDataPlane times a small aggregate through
// /v1/query on the federation's API (the libp2p data plane, through the
// worker's gateway) and on a second API of the same hub on the direct plane
// (remote() at each node's ClickHouse), 50 queries each, taking turns, and
// reports each plane's median. Both answer what the nodes hold.
func BenchmarkFederatedQueryDataPlane(b *testing.B) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(b, n, health.Healthy, time.Minute)
	}
	direct := startDirectAPI(b)
	const body = `{"sql": "SELECT count() AS n, sum(voxel_volume) AS v FROM neuron"}`
	var want uint64
	for _, node := range []string{"lab-a", "lab-b"} {
		var n uint64
		require.NoError(b, nodeConn(b, node).QueryRow(b.Context(), "SELECT count() FROM neuron").Scan(&n))
		want += n
	}
	planes := []struct{ name, url string }{{"libp2p", fed.APIURL}, {"direct", direct}}
	for range b.N {
		// The planes take turns, so both see the same load of a shared machine.
		times := make([][]time.Duration, len(planes))
		for range 50 {
			for i, plane := range planes {
				start := time.Now()
				n := postCount(b, plane.url, body)
				times[i] = append(times[i], time.Since(start))
				require.InDelta(b, float64(want), n, 0, plane.name)
			}
		}
		for i, plane := range planes {
			ts := times[i]
			slices.Sort(ts)
			b.ReportMetric(float64(ts[len(ts)/2].Microseconds())/1000, plane.name+"-median-ms")
			b.Logf("%s: median %s, min %s, max %s", plane.name, ts[len(ts)/2], ts[0], ts[len(ts)-1])
		}
	}
}

// startDirectAPI starts a second `syndb api` of the hub on free ports with
// SYNDB_DATA_PLANE=direct and returns its URL once it is ready.
func startDirectAPI(b *testing.B) string {
	b.Helper()
	return startAPIProcess(b, "api-direct", map[string]string{"SYNDB_DATA_PLANE": "direct"}, http.DefaultClient).url
}

// postCount runs body on the API at url and returns the first row's n.
func postCount(b *testing.B, url, body string) float64 {
	b.Helper()
	req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, url+"/v1/query", strings.NewReader(body))
	require.NoError(b, err)
	req.Header.Set("Authorization", "Bearer "+fed.APIKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(b, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(b, http.StatusOK, resp.StatusCode)
	// NDJSON: the rows, then a _meta line.
	var rows []map[string]any
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var line map[string]any
		require.NoError(b, dec.Decode(&line))
		if _, meta := line["_meta"]; !meta {
			rows = append(rows, line)
		}
	}
	require.Len(b, rows, 1)
	n, ok := rows[0]["n"].(float64)
	require.True(b, ok, "%v", rows[0])
	return n
}
