package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/store"
)

// labTotals is the oracle of a lab: its neuron rows and their terminal
// count, read from its own ClickHouse.
func labTotals(t *testing.T, l *nsLab) (uint64, uint64) {
	t.Helper()
	var n, s uint64
	require.NoError(t, l.conn.QueryRow(t.Context(), "SELECT count(), sum(terminal_count) FROM neuron").Scan(&n, &s))
	return n, s
}

// TestNetnsFederation: a lab reachable only through a relay and a lab
// reachable directly, each in its own namespace with its ClickHouse and
// Flight on its loopback, both answer federated queries, an analytics
// summary, an ETL load, a catalog sync and a synapse graph with their own
// data, and the hub reports how it reaches each.
func TestNetnsFederation(t *testing.T) {
	const relayMaxData = 256 << 20
	top := newNetnsTopology(t, "netns-marker-fed", 3000, relayMaxData)
	labs := []*nsLab{top.nat, top.direct}
	for _, l := range labs {
		waitHealth(t, l.name, health.Healthy, 3*time.Minute)
	}
	nat, dir := healthOf(t, top.nat.name), healthOf(t, top.direct.name)
	t.Logf("paths: %s %s over %s (%.2f ms), %s %s over %s (%.2f ms)", top.nat.name, nat.Path, nat.Transport, nat.RTTMS,
		top.direct.name, dir.Path, dir.Transport, dir.RTTMS)
	require.Contains(t, []string{p2p.PathRelayed, p2p.PathHolePunched}, nat.Path, "the NAT'd lab is reached through the relay")
	require.Equal(t, p2p.PathDirect, dir.Path)
	require.Equal(t, "tcp", dir.Transport, "the direct lab prefers TCP (SYNDB_P2P_PREFER=tcp)")
	if nat.Path == p2p.PathRelayed {
		require.Equal(t, "quic-v1", nat.Transport, "the hub reaches the relay at its QUIC address")
	}
	require.Positive(t, nat.RTTMS)
	require.Positive(t, dir.RTTMS)

	t.Run("query", func(t *testing.T) { netnsQuery(t, top, nat.Path) })
	t.Run("summary", func(t *testing.T) { netnsSummary(t, labs) })
	t.Run("etl", func(t *testing.T) { netnsEtl(t, top.nat) })
	t.Run("catalog", func(t *testing.T) { netnsCatalog(t, labs) })
	t.Run("graph", func(t *testing.T) { netnsGraph(t, top, relayMaxData) })
	t.Run("capture", func(t *testing.T) { netnsCapture(t, top, "netns-marker-fed") })
}

func netnsQuery(t *testing.T, top *netnsTopology, natPath string) {
	names := []string{top.nat.name, top.direct.name}
	var wantN, wantS uint64
	want := map[string][2]string{}
	for _, l := range []*nsLab{top.nat, top.direct} {
		n, s := labTotals(t, l)
		require.Equal(t, uint64(l.rows), n)
		want[l.name] = [2]string{fmt.Sprint(n), fmt.Sprint(s)}
		wantN, wantS = wantN+n, wantS+s
	}
	reader := newKey(t, "netns-reader", store.RoleReader)
	res := queryAs(t, reader.key, queryBody(t, "SELECT count() AS n, sum(terminal_count) AS s FROM neuron", names...))
	require.Equal(t, http.StatusOK, res.status, "%+v", res.err)
	require.Len(t, res.rows, 1)
	require.Equal(t, fmt.Sprint(wantN), fmt.Sprint(res.rows[0]["n"]))
	require.Equal(t, fmt.Sprint(wantS), fmt.Sprint(res.rows[0]["s"]))
	require.ElementsMatch(t, names, res.meta.Included)
	require.Equal(t, map[string]string{top.nat.name: natPath, top.direct.name: p2p.PathDirect}, res.meta.Paths)

	res = queryAs(t, reader.key, queryBody(t,
		"SELECT _node, count() AS n, sum(terminal_count) AS s FROM neuron GROUP BY _node ORDER BY _node", names...))
	require.Equal(t, http.StatusOK, res.status, "%+v", res.err)
	got := map[string][2]string{}
	for _, r := range res.rows {
		got[fmt.Sprint(r["_node"])] = [2]string{fmt.Sprint(r["n"]), fmt.Sprint(r["s"])}
	}
	require.Equal(t, want, got)
}

func netnsSummary(t *testing.T, labs []*nsLab) {
	names := make([]string, len(labs))
	for i, l := range labs {
		names[i] = fmt.Sprintf("%q", l.name)
	}
	st := startJob(t, `{"analysis": "summary", "table": "neuron", "column": "voxel_volume", "nodes": [`+strings.Join(names, ",")+`]}`)
	js := waitJob(t, st.JobID, 2*time.Minute)
	require.Equal(t, domain.JobCompleted, js.State, "%s", js.Error)
	var res activities.SummaryResult
	require.NoError(t, json.Unmarshal(js.Result, &res))
	got := map[string]activities.DatasetStats{}
	for _, d := range res.Datasets {
		got[d.DatasetID] = d
	}
	require.Len(t, got, len(labs))
	for _, l := range labs {
		var (
			n                uint64
			mean, lo, hi, sd float64
		)
		require.NoError(t, l.conn.QueryRow(t.Context(), `SELECT count(voxel_volume), avg(voxel_volume), min(voxel_volume),
			max(voxel_volume), stddevPop(voxel_volume) FROM neuron WHERE dataset_id = toUUID(?)`, l.dataset).Scan(&n, &mean, &lo, &hi, &sd))
		d, ok := got[l.dataset]
		require.True(t, ok, "dataset of %s missing from the summary", l.name)
		require.Equal(t, l.name, d.Node)
		require.Equal(t, n, d.Count)
		require.InDelta(t, mean, d.Mean, 1e-9*math.Max(1, mean))
		require.InDelta(t, sd, d.Stddev, 1e-6*math.Max(1, sd))
		require.InDelta(t, lo, d.Min, 0)
		require.InDelta(t, hi, d.Max, 0)
	}
}

// netnsEtl loads rows carrying a marker into l through an ETL job and
// returns the marker.
func netnsEtl(t *testing.T, l *nsLab) string {
	dataset := uuid.NewString()
	var csv strings.Builder
	csv.WriteString("cid,voxel_volume,neuron_type,terminal_count\n")
	for i := range 500 {
		fmt.Fprintf(&csv, "%s,%g,netns-marker-etl,%d\n", uuid.New(), float64(i)/3, i%11)
	}
	obj := upload(t, "netns-neurons.csv", []byte(csv.String()))
	spec := fmt.Sprintf(`{"object": %q, "table": "neuron", "node": %q, "dataset": {"dataset_id": %q,
		"name": "netns ETL", "owner": "netns", "animal": "mouse", "microscopy": "SBEM", "genetic_manipulations": []}}`,
		obj, l.name, dataset)
	status, raw := apiDo(t, http.MethodPost, "/v1/jobs", `{"kind": "etl", "spec": `+spec+`}`)
	require.Equal(t, http.StatusAccepted, status, string(raw))
	var st api.JobStarted
	require.NoError(t, json.Unmarshal(raw, &st))
	js := waitJob(t, st.JobID, 2*time.Minute)
	require.Equal(t, domain.JobCompleted, js.State, "%s %s", js.Error, js.Result)
	require.Equal(t, int64(500), etlResult(t, js).Loaded.Rows)
	var n, sum uint64
	require.NoError(t, l.conn.QueryRow(t.Context(), `SELECT count(), sum(terminal_count) FROM neuron
		WHERE dataset_id = toUUID(?) AND neuron_type = 'netns-marker-etl'`, dataset).Scan(&n, &sum))
	require.Equal(t, uint64(500), n, "the rows landed in the NAT'd lab's own ClickHouse")
	var want uint64
	for i := range 500 {
		want += uint64(i % 11)
	}
	require.Equal(t, want, sum)
	var registered uint64
	require.NoError(t, l.conn.QueryRow(t.Context(), `SELECT count() FROM datasets WHERE dataset_id = toUUID(?)`, dataset).Scan(&registered))
	require.Equal(t, uint64(1), registered)
	return "netns-marker-etl"
}

func netnsCatalog(t *testing.T, labs []*nsLab) {
	catalogSync(t)
	for _, l := range labs {
		want := map[string]uint64{}
		rows, err := l.conn.Query(t.Context(), `SELECT toString(d.dataset_id), count(n.cid) FROM datasets AS d
			LEFT JOIN neuron AS n ON n.dataset_id = d.dataset_id GROUP BY d.dataset_id`)
		require.NoError(t, err)
		for rows.Next() {
			var (
				id string
				n  uint64
			)
			require.NoError(t, rows.Scan(&id, &n))
			want[id] = n
		}
		require.NoError(t, rows.Close())
		page := searchDatasets(t, url.Values{"node": {l.name}, "limit": {"100"}})
		got := map[string]uint64{}
		for _, d := range page.Datasets {
			got[d.DatasetID] = d.TotalRows
		}
		require.Equal(t, want, got, "the catalog of %s is its datasets", l.name)
	}
}

// TestNetnsRelayBudget: a relay whose data budget per relayed connection
// is smaller than a lab's synapses cuts their Flight transfer, and the job
// fails soon, naming the relay's limit, rather than hanging or retrying.
func TestNetnsRelayBudget(t *testing.T) {
	const budget = 512 << 10
	top := newNetnsTopology(t, "netns-marker-budget", 1000, budget)
	waitHealth(t, top.nat.name, health.Healthy, 3*time.Minute)
	require.NoError(t, top.nat.conn.Exec(t.Context(), fmt.Sprintf(`INSERT INTO synapse (dataset_id, cid, pre_id, post_id)
		SELECT toUUID('%s'), generateUUIDv4(), generateUUIDv4(), generateUUIDv4() FROM numbers(100000)`, top.nat.dataset)))
	var edges uint64
	require.NoError(t, top.nat.conn.QueryRow(t.Context(), "SELECT count() FROM synapse WHERE pre_id IS NOT NULL").Scan(&edges))
	// Two UUIDs an edge: the transfer is well over the relay's budget.
	require.Greater(t, edges*32, uint64(4*budget))

	start := time.Now()
	st := startJob(t, fmt.Sprintf(`{"analysis": "synapse_graph", "nodes": [%q]}`, top.nat.name))
	js := waitJob(t, st.JobID, 2*time.Minute)
	t.Logf("job %s after %s: %s %s", js.State, time.Since(start), js.Error, js.Nodes)
	require.Contains(t, []string{domain.JobFailed, domain.JobPartial}, js.State)
	why := js.Error + " " + string(js.Nodes)
	require.Contains(t, why, "circuit relay was cut")
	require.Contains(t, why, "SYNDB_RELAY_MAX_DATA")
	require.Contains(t, why, top.nat.name)
}
