package e2e

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/fedsql"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/schemas"
)

// fedsqlRows is how many neuron rows, and how many synapse rows, each node
// of BenchmarkFederatedSQL holds.
const fedsqlRows = 10_000_000

// fedsqlRuns is how many timed runs of each variant follow its warm-up.
const fedsqlRuns = 3

// fedsqlLoad fills a node with fedsqlRows neurons in four datasets (ids
// ending in base..base+3) whose voxel_volume is a hash of the row's number
// and the node's base (distinct across the fleet, so a top 10 has no ties)
// and whose neuron_type is one of five, then one synapse per neuron whose
// pre_id is that neuron's cid, each table merged into one part.
func fedsqlLoad(base int) []string {
	return []string{
		fmt.Sprintf(`INSERT INTO neuron (dataset_id, cid, voxel_volume, neuron_type)
		SELECT toUUID(concat('00000000-0000-4000-8000-0000000000', toString(%d + number %% 4))), generateUUIDv4(),
			toFloat64(cityHash64(number, %d)) / 1e18,
			['pyramidal', 'interneuron', 'granule', 'purkinje', 'stellate'][intHash32(number) %% 5 + 1]
		FROM numbers(%d)`, base, base, fedsqlRows),
		`INSERT INTO synapse (dataset_id, cid, pre_id, cleft_width, neurotransmitter)
		SELECT dataset_id, generateUUIDv4(), cid, voxel_volume, 'glutamate' FROM neuron`,
		// One part a table: no background merge competes with the runs.
		"OPTIMIZE TABLE neuron FINAL",
		"OPTIMIZE TABLE synapse FINAL",
	}
}

// fedsqlCase is one query of BenchmarkFederatedSQL.
type fedsqlCase struct {
	name string
	sql  string
	// floorSQL is sql as one node's ClickHouse runs it on its own rows.
	floorSQL string
	// m compares answers.
	m match
	// merge is the fleet's answer from each node's answer to floorSQL
	// (perNode[i] is f[i]'s).
	merge func(f pushFleet, perNode [][][]any) [][]any
	// countCol, when set, is a column of counts that sums to every node's
	// rows (each neuron counted once: cids are unique).
	countCol int
}

func fedsqlCases() []fedsqlCase {
	const (
		agg  = "SELECT dataset_id, count(), avg(voxel_volume), quantile(0.9)(voxel_volume) FROM neuron GROUP BY dataset_id"
		join = "SELECT n.neuron_type, count() AS c FROM synapse AS s JOIN neuron AS n ON s.pre_id = n.cid GROUP BY n.neuron_type"
		top  = "SELECT cid, voxel_volume FROM neuron ORDER BY voxel_volume DESC LIMIT 10"
	)
	return []fedsqlCase{
		// Datasets live on one node each, so the fleet's groups are the
		// nodes' groups; quantile samples, so its answers agree within 2%.
		{name: "aggregate", sql: agg, floorSQL: agg, m: match{colTol: map[int]float64{3: 0.02}}, merge: concatRows, countCol: 1},
		{name: "join", sql: join, floorSQL: join + " SETTINGS join_default_strictness = 'ALL'", merge: sumByFirst, countCol: 1},
		{name: "top10", sql: top, floorSQL: top, m: match{ordered: true}, merge: topByVolume},
	}
}

// concatRows merges rows of groups that live on one node each.
func concatRows(_ pushFleet, perNode [][][]any) [][]any { return slices.Concat(perNode...) }

// sumByFirst merges rows of (key, count) by summing the counts of a key.
func sumByFirst(_ pushFleet, perNode [][][]any) [][]any {
	sums := map[any]float64{}
	var keys []any
	for _, r := range slices.Concat(perNode...) {
		if _, ok := sums[r[0]]; !ok {
			keys = append(keys, r[0])
		}
		sums[r[0]] += r[1].(float64)
	}
	out := make([][]any, len(keys))
	for i, k := range keys {
		out[i] = []any{k, sums[k]}
	}
	return out
}

// topByVolume merges each node's top 10 of (cid, voxel_volume) into the
// fleet's, each row led by its node's name (the answer of a query that
// does not aggregate says where each row comes from).
func topByVolume(f pushFleet, perNode [][][]any) [][]any {
	var all [][]any
	for i, rows := range perNode {
		all = append(all, tagged(f[i].name, rows)...)
	}
	slices.SortFunc(all, func(a, b []any) int { return cmp.Compare(b[2].(float64), a[2].(float64)) })
	return all[:min(10, len(all))]
}

// fedsqlRun is one run of a query: its wall time, the bytes the nodes sent
// the hub (down) and the hub sent the nodes (up) through their proxies,
// and its answer.
type fedsqlRun struct {
	took     time.Duration
	down, up int64
	rows     [][]any
}

// fedsqlRow is one query's figures: node scope, the floor and fleet scope.
type fedsqlRow struct {
	name string
	// hub is node scope's compiled statement run straight on the hub's
	// ClickHouse, without the API.
	node, hub, floor, fleet fedsqlRun
}

// BenchmarkFederatedSQL: three queries over two nodes of 10 M neurons and
// 10 M synapses each, whose warehouses the hub reaches through
// byte-counting proxies. Each query runs three ways: /v1/query (node
// scope: each node answers its share, the hub merges), the floor (the
// statement straight on each node's ClickHouse, both at once: the slower
// node's time) and /v1/query in fleet scope (the hub runs the query over
// the union of the nodes' rows). Each figure is the median of three runs
// after a warm-up; every answer is checked against the floor's. Beside
// them, node scope's compiled statement straight on the hub's ClickHouse
// tells the API's share of its time. Run it with `go tool task bench`.
func BenchmarkFederatedSQL(b *testing.B) {
	// setup is each node's start: its server, its rows and its agent.
	var setup []time.Duration
	var f pushFleet
	for i, name := range []string{"fsql-a", "fsql-b"} {
		began := time.Now()
		f = append(f, startPushNode(b, name, fedsqlLoad(10*(i+1))...))
		setup = append(setup, time.Since(began).Round(time.Second))
	}
	// An API of its own whose limits let a join hold every neuron: the
	// fleet-scope join's cap is raised, a query may run for minutes, and
	// it runs on the hub as the default user (4 GB a query) rather than
	// the query user (1 GB, 60 s), because either join holds 10 M neurons
	// a node on the hub (node scope: each node's right side, which GLOBAL
	// JOIN gathers on the hub and ships to the node).
	hub := openCH(b, fed.Stack.Hub.Addr(), "syndb")
	base := startAPIReplica(b, map[string]string{
		"SYNDB_QUERY_TIMEOUT": "10m", "SYNDB_QUERY_REMOTE_RECEIVE_TIMEOUT": "5m",
		"SYNDB_QUERY_MAX_JOIN_ROWS":   fmt.Sprint(4 * fedsqlRows),
		"SYNDB_CLICKHOUSE_QUERY_USER": "default", "SYNDB_CLICKHOUSE_QUERY_PASSWORD": "",
		// The statements carry max_memory_usage: the default user's 4 GB.
		"SYNDB_QUERY_MAX_MEMORY": "4000000000",
	})
	var table []fedsqlRow
	for _, c := range fedsqlCases() {
		b.Run(c.name, func(b *testing.B) {
			b.StopTimer()
			for range b.N {
				row := benchFedSQLCase(b, f, base, hub, c)
				reportFedSQL(b, row)
				table = append(table, row)
			}
		})
	}
	logNodeQuery(b, f, base, fedsqlCases()[1].sql)
	printFedSQLTable(b, table, setup)
}

// benchFedSQLCase measures c's variants and checks their answers. Each
// round runs every variant in turn, so that a burst of load elsewhere on
// the machine falls on all of them alike; the first round warms up.
func benchFedSQLCase(b *testing.B, f pushFleet, base string, hub driver.Conn, c fedsqlCase) fedsqlRow {
	b.Helper()
	compiled := compileNodeScope(b, f, c.sql)
	variants := []func() fedsqlRun{
		func() fedsqlRun {
			took, perNode := f.floor(b, c.floorSQL)
			return fedsqlRun{took: took, rows: c.merge(f, perNode)}
		},
		func() fedsqlRun { return f.viaAPI(b, base, c.sql, "node") },
		func() fedsqlRun { return f.viaHub(b, hub, compiled) },
		func() fedsqlRun { return f.viaAPI(b, base, c.sql, "fleet") },
	}
	runs := make([][]fedsqlRun, len(variants))
	for round := range fedsqlRuns + 1 {
		for i, v := range variants {
			if r := v(); round > 0 {
				runs[i] = append(runs[i], r)
			}
		}
	}
	want := runs[0][0].rows
	require.NotEmpty(b, want, c.name)
	if c.countCol > 0 {
		var total float64
		for _, r := range want {
			total += r[c.countCol].(float64)
		}
		require.InDelta(b, float64(len(f)*fedsqlRows), total, 0, "%s: every row counted once", c.name)
	}
	med := make([]fedsqlRun, len(variants))
	for i, rs := range runs {
		for k, r := range rs {
			requireRows(b, c.m, want, r.rows, fmt.Sprintf("%s: variant %d, run %d, against the floor", c.name, i, k))
		}
		slices.SortFunc(rs, func(x, y fedsqlRun) int { return cmp.Compare(x.took, y.took) })
		med[i] = rs[len(rs)/2]
	}
	requireRows(b, c.m, med[3].rows, med[1].rows, c.name+": node scope against fleet scope")
	return fedsqlRow{name: c.name, floor: med[0], node: med[1], hub: med[2], fleet: med[3]}
}

// compileNodeScope compiles sql in node scope for the nodes as the API
// does, each read through its proxy.
func compileNodeScope(b *testing.B, f pushFleet, sql string) string {
	b.Helper()
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(b, err)
	cat := fedsql.NewCatalog(migrate.ColumnVersions(migs), migrate.ColumnOrder(migs))
	parsed, err := fedsql.Parse(sql, cat, fedsql.Options{MaxRows: 1000})
	require.NoError(b, err)
	targets := make([]fedsql.Target, len(f))
	for i, n := range f {
		targets[i] = fedsql.Target{Name: n.name, Addr: n.proxy.Addr(), Database: "syndb", User: "default"}
	}
	compiled, err := parsed.Compile(targets)
	require.NoError(b, err)
	return compiled
}

// viaHub runs compiled straight on the hub's ClickHouse, without the API:
// the hub's share of node scope's time.
func (f pushFleet) viaHub(b *testing.B, hub driver.Conn, compiled string) fedsqlRun {
	b.Helper()
	down, up := f.counters()
	began := time.Now()
	scanned, err := scanRows(b.Context(), hub, compiled)
	run := fedsqlRun{took: time.Since(began)}
	require.NoError(b, err)
	d, u := f.counters()
	run.down, run.up, run.rows = d-down, u-up, normalizeAll(b, scanned)
	return run
}

// counters reads the bytes every node's proxy has carried so far, to the
// hub and from it.
func (f pushFleet) counters() (down, up int64) {
	for _, n := range f {
		down += n.proxy.down.Load()
		up += n.proxy.up.Load()
	}
	return down, up
}

// viaAPI runs sql over the nodes through /v1/query at base in scope.
func (f pushFleet) viaAPI(b *testing.B, base, sql, scope string) fedsqlRun {
	b.Helper()
	body, err := json.Marshal(api.QueryRequest{SQL: sql, Nodes: f.names(), Scope: scope, Format: "json"})
	require.NoError(b, err)
	req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, base+"/v1/query", strings.NewReader(string(body)))
	require.NoError(b, err)
	req.Header.Set("Authorization", "Bearer "+fed.APIKey)
	req.Header.Set("Content-Type", "application/json")
	down, up := f.counters()
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(b, err)
	defer func() { _ = resp.Body.Close() }()
	ans := readAnswer(b, resp)
	run := fedsqlRun{took: time.Since(began), rows: ans.rows}
	d, u := f.counters()
	run.down, run.up = d-down, u-up
	require.Equal(b, http.StatusOK, ans.status, "%s (%s)\nrefused: %s", sql, scope, ans.err)
	require.Empty(b, ans.meta.Error, "%s (%s)", sql, scope)
	require.ElementsMatch(b, f.names(), ans.meta.Included, "%s (%s)", sql, scope)
	return run
}

// floor runs sql on every node's ClickHouse directly (not through its
// proxy), all at once, and returns the slowest node's wall time and each
// node's answer.
func (f pushFleet) floor(b *testing.B, sql string) (time.Duration, [][][]any) {
	b.Helper()
	took := make([]time.Duration, len(f))
	scanned := make([][][]any, len(f))
	errs := make([]error, len(f))
	var wg sync.WaitGroup
	for i, n := range f {
		wg.Go(func() {
			began := time.Now()
			scanned[i], errs[i] = scanRows(b.Context(), n.conn, sql)
			took[i] = time.Since(began)
		})
	}
	wg.Wait()
	out := make([][][]any, len(f))
	for i, n := range f {
		require.NoError(b, errs[i], "%s: %s", n.name, sql)
		out[i] = normalizeAll(b, scanned[i])
	}
	return slices.Max(took), out
}

func reportFedSQL(b *testing.B, r fedsqlRow) {
	b.ReportMetric(ms(r.node.took), "node-ms")
	b.ReportMetric(ms(r.hub.took), "hub-ms")
	b.ReportMetric(ms(r.floor.took), "floor-ms")
	b.ReportMetric(ms(r.fleet.took), "fleet-ms")
	b.ReportMetric(r.node.took.Seconds()/r.floor.took.Seconds(), "x-floor")
	b.ReportMetric(float64(r.node.down), "node-B")
	b.ReportMetric(float64(r.fleet.down), "fleet-B")
	b.ReportMetric(float64(r.fleet.down)/float64(r.node.down), "x-bytes")
	b.ReportMetric(float64(r.node.up), "node-up-B")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// logNodeQuery logs the query each node answers for sql in node scope
// (POST /v1/query/explain).
func logNodeQuery(b *testing.B, f pushFleet, base, sql string) {
	b.Helper()
	body, err := json.Marshal(api.QueryRequest{SQL: sql, Nodes: f.names()})
	require.NoError(b, err)
	req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, base+"/v1/query/explain", strings.NewReader(string(body)))
	require.NoError(b, err)
	req.Header.Set("Authorization", "Bearer "+fed.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(b, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(b, http.StatusOK, resp.StatusCode)
	var ex api.ExplainResponse
	require.NoError(b, json.NewDecoder(resp.Body).Decode(&ex))
	require.NotEmpty(b, ex.Nodes)
	b.Logf("node query of %s:\n%s\nmerge:\n%s", sql, ex.Nodes[0].SQL, ex.Merge)
}

// printFedSQLTable prints the benchmark's figures, each beside its
// baseline, with the date, the commit, the machine's cores and how long
// each node took to start.
func printFedSQLTable(b *testing.B, table []fedsqlRow, setup []time.Duration) {
	b.Helper()
	commit, err := exec.CommandContext(b.Context(), "git", "rev-parse", "--short", "HEAD").Output()
	require.NoError(b, err)
	var s strings.Builder
	fmt.Fprintf(&s, "\nBenchmarkFederatedSQL %s, commit %s, %d cores; 2 nodes × %d neurons + %d synapses; median of %d runs after a warm-up\n",
		time.Now().UTC().Format(time.DateOnly), strings.TrimSpace(string(commit)), runtime.NumCPU(), fedsqlRows, fedsqlRows, fedsqlRuns)
	fmt.Fprintf(&s, "%-10s %10s %10s %10s %8s %10s | %12s %12s %8s | %12s %12s\n",
		"query", "node(1)", "hub(1')", "floor(2)", "(1)/(2)", "fleet(3)", "node↓(1)", "fleet↓(3)", "(3)/(1)", "node↑(1)", "fleet↑(3)")
	for _, r := range table {
		fmt.Fprintf(&s, "%-10s %10s %10s %10s %7.2fx %10s | %12s %12s %7.1fx | %12s %12s\n", r.name,
			r.node.took.Round(time.Millisecond), r.hub.took.Round(time.Millisecond), r.floor.took.Round(time.Millisecond),
			r.node.took.Seconds()/r.floor.took.Seconds(),
			r.fleet.took.Round(time.Millisecond), fmtBytes(r.node.down), fmtBytes(r.fleet.down),
			float64(r.fleet.down)/float64(max(r.node.down, 1)), fmtBytes(r.node.up), fmtBytes(r.fleet.up))
	}
	s.WriteString("(1) /v1/query, node scope; (1') its compiled statement straight on the hub's ClickHouse; (2) the statement on each node's ClickHouse at once, the slower node; (3) /v1/query, fleet scope\n")
	s.WriteString("↓: bytes the nodes sent the hub (both proxies); ↑: bytes the hub sent the nodes\n")
	fmt.Fprintf(&s, "each node's start (server, rows, agent): %v\n", setup)
	_, err = os.Stdout.WriteString(s.String())
	require.NoError(b, err)
}

// fmtBytes prints n bytes in B, KB or MB.
func fmtBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
