package e2e

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/health"
)

// oracleNodes are the nodes the oracle tests route to.
var oracleNodes = []string{"lab-a", "lab-b"}

// oracleDB is the fleet oracle's database, on lab-a's ClickHouse.
const oracleDB = "syndb_oracle"

// oracleTables are the SynDB tables the cases read.
var oracleTables = []string{"neuron", "synapse", "pre_synapse", "vesicle", "datasets"}

// oracles are the independent answers' sources: each node's warehouse, and
// the fleet oracle.
type oracles struct {
	nodes map[string]driver.Conn
	fleet driver.Conn
}

// TestFedSQLOracle asks /v1/query the questions of oracleCases over lab-a
// and lab-b and compares each answer with its oracle, computed on the
// nodes' own ClickHouse servers without the hub.
func TestFedSQLOracle(t *testing.T) {
	for _, n := range oracleNodes {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	o := &oracles{nodes: map[string]driver.Conn{}}
	for _, n := range oracleNodes {
		o.nodes[n] = nodeConn(t, n)
	}
	o.fleet = buildFleetOracle(t)
	requireDisjointNodes(t, o)
	for _, c := range oracleCases {
		t.Run(c.name, func(t *testing.T) { c.run(t, o) })
	}
	t.Run("csv/top5_largest_neurons", func(t *testing.T) { requireCSV(t, o, caseNamed(t, "top5_largest_neurons")) })
	t.Run("arrow/count_avg_by_dataset", func(t *testing.T) { requireArrow(t, o, caseNamed(t, "count_avg_by_dataset")) })
}

// buildFleetOracle creates oracleDB on lab-a's ClickHouse with, for each of
// oracleTables, both nodes' rows, each tagged with its node in _node, and
// drops it when the test ends.
func buildFleetOracle(t *testing.T) driver.Conn {
	t.Helper()
	addr := fed.Stack.Nodes["lab-a"].Addr()
	admin := openCH(t, addr, "default")
	ctx := t.Context()
	require.NoError(t, admin.Exec(ctx, "DROP DATABASE IF EXISTS "+oracleDB))
	t.Cleanup(func() { require.NoError(t, dropDatabase(context.Background(), addr, oracleDB)) })
	require.NoError(t, admin.Exec(ctx, "CREATE DATABASE "+oracleDB))
	for _, table := range oracleTables {
		require.NoError(t, admin.Exec(ctx, fmt.Sprintf(
			"CREATE TABLE %s.%s ENGINE = MergeTree ORDER BY _node AS SELECT 'lab-a' AS _node, * FROM syndb.%s",
			oracleDB, table, table)))
		require.NoError(t, admin.Exec(ctx, fmt.Sprintf("INSERT INTO %s.%s SELECT 'lab-b' AS _node, * FROM remote('%s', syndb, %s)",
			oracleDB, table, fed.Stack.Nodes["lab-b"].Addr(), table)))
	}
	return openCH(t, addr, oracleDB)
}

// requireDisjointNodes checks what the oracles rely on: both nodes hold rows
// of every table read, and no dataset or compartment id is on both, so a
// per-node join or IN merged over the fleet is the join over the union.
func requireDisjointNodes(t *testing.T, o *oracles) {
	t.Helper()
	for _, table := range oracleTables {
		for _, n := range oracleNodes {
			require.Positive(t, nodeCount(t, n, table), "%s holds %s rows", n, table)
		}
		var ids, nodeIDs uint64
		require.NoError(t, o.fleet.QueryRow(t.Context(), fmt.Sprintf(
			"SELECT uniqExact(dataset_id), uniqExact(_node, dataset_id) FROM %s", table)).Scan(&ids, &nodeIDs))
		require.Equal(t, nodeIDs, ids, "no dataset of %s is on both nodes", table)
		if table == "datasets" {
			continue
		}
		var rows, cids uint64
		require.NoError(t, o.fleet.QueryRow(t.Context(), fmt.Sprintf("SELECT count(), uniqExact(cid) FROM %s", table)).Scan(&rows, &cids))
		require.Equal(t, rows, cids, "%s ids are unique across the fleet", table)
	}
}

func caseNamed(t *testing.T, name string) oracleCase {
	t.Helper()
	i := slices.IndexFunc(oracleCases, func(c oracleCase) bool { return c.name == name })
	require.GreaterOrEqual(t, i, 0, name)
	return oracleCases[i]
}

// run computes the oracle's answer first (so a refusal by the hub is
// reported with the oracle known to answer), then asks the hub.
func (c oracleCase) run(t *testing.T, o *oracles) {
	direct := cmp.Or(c.direct, c.sql)
	want := map[string][][]any{}
	if c.oracle == fleetOracle {
		want[""] = chRows(t, o.fleet, direct)
	}
	if c.oracle == perNodeOracle || c.within {
		for _, n := range oracleNodes {
			want[n] = tagged(n, chRows(t, o.nodes[n], direct))
		}
	}
	if c.within {
		// The premise: the union's own answer lies between the nodes'.
		requireWithin(t, c.sql+" (fleet oracle)", want, want[""])
	}
	ans := fedQuery(t, c.sql, oracleNodes)
	require.Equal(t, http.StatusOK, ans.status, "%s\nrefused: %s", c.sql, ans.err)
	require.Empty(t, ans.meta.Error, c.sql)
	require.ElementsMatch(t, oracleNodes, ans.meta.Included, c.sql)
	switch {
	case c.within:
		requireWithin(t, c.sql, want, ans.rows)
	case c.oracle == fleetOracle:
		requireRows(t, c.match, want[""], ans.rows, c.sql)
	default:
		require.Equal(t, "_node", ans.cols[0], "per-node rows start with _node: %s", c.sql)
		got := byNode(t, ans.rows)
		var all [][]any
		for _, n := range oracleNodes {
			if c.match.ordered {
				requireRows(t, c.match, want[n], got[n], c.sql+" on "+n)
			}
			all = append(all, want[n]...)
		}
		requireRows(t, c.match, all, ans.rows, c.sql)
	}
}

// requireWithin checks a one-value answer of an approximate aggregate
// (quantile) against want: the fleet oracle's answer (key "") and each
// node's (tagged with the node). Merged per-node states need not give the
// aggregate over the union exactly, but the answer lies between the nodes'
// own and within 5% of the fleet oracle's.
func requireWithin(t *testing.T, sql string, want map[string][][]any, got [][]any) {
	t.Helper()
	require.Len(t, got, 1, sql)
	require.Len(t, got[0], 1, sql)
	v, ok := got[0][0].(float64)
	require.True(t, ok, "a number: %v", got[0][0])
	var per []float64
	for _, n := range oracleNodes {
		per = append(per, want[n][0][1].(float64))
	}
	require.GreaterOrEqual(t, v, slices.Min(per), sql)
	require.LessOrEqual(t, v, slices.Max(per), sql)
	require.InEpsilon(t, want[""][0][0].(float64), v, 0.05, sql)
}

// requireCSV runs c (a fleet case) with format=csv and compares the values
// with the oracle's.
func requireCSV(t *testing.T, o *oracles, c oracleCase) {
	t.Helper()
	resp := postQuery(t, formatBody(t, c.sql, "csv", oracleNodes), "")
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	recs, err := csv.NewReader(resp.Body).ReadAll()
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	require.Equal(t, "_node", recs[0][0])
	want := chRows(t, o.fleet, cmp.Or(c.direct, c.sql))
	got := make([][]any, 0, len(recs)-1)
	for i, rec := range recs[1:] {
		require.Len(t, rec, len(want[0]))
		row := make([]any, len(rec))
		for j, field := range rec {
			row[j] = field
			if i < len(want) && want[i][j] != nil {
				if _, isNum := want[i][j].(float64); isNum {
					f, err := strconv.ParseFloat(field, 64)
					require.NoError(t, err, field)
					row[j] = f
				}
			}
		}
		got = append(got, row)
	}
	requireRows(t, c.match, want, got, c.sql+" (csv)")
}

// requireArrow runs c (a fleet case) with format=arrow and compares the
// values, read with the Arrow IPC reader, with the oracle's.
func requireArrow(t *testing.T, o *oracles, c oracleCase) {
	t.Helper()
	resp := postQuery(t, formatBody(t, c.sql, "arrow", oracleNodes), "")
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	rd, err := ipc.NewReader(resp.Body)
	require.NoError(t, err)
	defer rd.Release()
	var got [][]any
	for rd.Next() {
		rec := rd.RecordBatch()
		for i := range int(rec.NumRows()) {
			row := make([]any, rec.NumCols())
			for j, col := range rec.Columns() {
				raw, err := json.Marshal(col.GetOneForMarshal(i))
				require.NoError(t, err)
				require.NoError(t, json.Unmarshal(raw, &row[j]))
			}
			got = append(got, row)
		}
	}
	require.NoError(t, rd.Err())
	requireRows(t, c.match, chRows(t, o.fleet, cmp.Or(c.direct, c.sql)), got, c.sql+" (arrow)")
}
