package fedsql

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var testCatalog = NewCatalog(map[string]map[string]int{
	"neuron":       {"dataset_id": 2, "cid": 2, "voxel_volume": 2, "neuron_type": 2},
	"mitochondria": {"dataset_id": 2, "cid": 2, "cristae_count": 3},
	"synapse":      {"dataset_id": 2, "cid": 2, "pre_id": 2, "post_id": 2, "cleft_width": 4, "neurotransmitter": 2},
	"pre_synapse":  {"dataset_id": 2, "cid": 2, "parent_id": 2},
	"vesicle":      {"dataset_id": 2, "cid": 2, "parent_id": 2, "voxel_volume": 2},
}, map[string][]string{"neuron": {"dataset_id", "cid", "voxel_volume", "neuron_type"}})

var targets = []Target{
	{Name: "lab-a", Addr: "127.0.0.1:9003", Database: "syndb", User: "default"},
	{Name: "lab-b", Addr: "10.0.0.2:9000", Database: "syndb_b", User: "reader", Password: "s'cret"},
}

func parse(t testing.TB, sql string, scope Scope) *Parsed {
	t.Helper()
	p, err := Parse(sql, testCatalog, Options{MaxRows: 1000, MaxSeconds: 60, Scope: scope})
	require.NoError(t, err, sql)
	return p
}

func TestCompile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, sql string
		scope     Scope
		node      []string // substrings of lab-a's share
		merge     []string // substrings of the hub's merge query
		aggregate bool
		min       int
		limit     int
		truncated bool
	}{
		{name: "aggregates travel as states", sql: "SELECT dataset_id, count(), avg(voxel_volume), quantile(0.9)(voxel_volume) FROM neuron GROUP BY dataset_id",
			node:      []string{"dataset_id AS _syndb_k1, countState() AS _syndb_a1, avgState(voxel_volume) AS _syndb_a2, quantileState(0.9)(voxel_volume) AS _syndb_a3", "FROM remote('127.0.0.1:9003', 'syndb', 'neuron', 'default', '') AS neuron GROUP BY _syndb_k1"},
			merge:     []string{"SELECT _syndb_k1 AS `dataset_id`, countMerge(_syndb_a1) AS `count()`, avgMerge(_syndb_a2) AS `avg(voxel_volume)`, quantileMerge(0.9)(_syndb_a3)", "GROUP BY _syndb_k1 LIMIT 0, 1000"},
			aggregate: true, min: 2, limit: 1000},
		{name: "plain rows get their node and a per-node limit", sql: "SELECT cid, voxel_volume FROM neuron WHERE voxel_volume > 1.5 ORDER BY voxel_volume DESC LIMIT 5",
			node:  []string{"SELECT 'lab-a' AS _node, cid AS _syndb_c1, voxel_volume AS _syndb_c2, voxel_volume AS _syndb_o1 FROM remote(", "WHERE voxel_volume > 1.5 ORDER BY voxel_volume DESC LIMIT 0, 5"},
			merge: []string{"SELECT _node, _syndb_c1 AS `cid`, _syndb_c2 AS `voxel_volume` FROM (", "ORDER BY _syndb_o1 DESC LIMIT 0, 5"},
			min:   2, limit: 5},
		{name: "group by node", sql: "SELECT _node, count() AS n FROM neuron GROUP BY _node ORDER BY n DESC",
			node: []string{"materialize('lab-a') AS _node, countState() AS _syndb_a1", "GROUP BY _node"}, merge: []string{"SELECT _node, countMerge(_syndb_a1) AS n", "GROUP BY _node ORDER BY n DESC"},
			aggregate: true, limit: 1000},
		{name: "constants travel materialised", sql: "SELECT 1 AS one, toDate('2020-01-02') AS d, cid, lower(neuron_type) AS t FROM neuron ORDER BY 2 + 3, cid",
			node: []string{"materialize(1) AS one, materialize(toDate('2020-01-02')) AS d, cid AS _syndb_c3, lower(neuron_type) AS t", "materialize(2 + 3) AS _syndb_o1, cid AS _syndb_o2"},
			min:  2, limit: 1000},
		{name: "a constant group key travels materialised, grouped by the constant", sql: "SELECT toDate('2020-01-02') AS d, dataset_id, count() FROM neuron GROUP BY d, dataset_id",
			node:      []string{"materialize(toDate('2020-01-02')) AS d, dataset_id AS _syndb_k2, countState() AS _syndb_a1", "GROUP BY toDate('2020-01-02'), _syndb_k2"},
			merge:     []string{"GROUP BY d, _syndb_k2"},
			aggregate: true, min: 2, limit: 1000},
		{name: "a WITH constant travels materialised", sql: "WITH 5 AS c, toString(c) AS s, nullIf(c, 5) AS z SELECT c, s AS t, z, cid FROM neuron ORDER BY c",
			node: []string{"materialize(c) AS _syndb_c1, materialize(s) AS t, [z][materialize(1)] AS _syndb_c3, cid AS _syndb_c4", "materialize(c) AS _syndb_o1"},
			min:  2, limit: 1000},
		{name: "a WITH constant group key is grouped by itself and read on the hub", sql: "WITH 5 AS c SELECT c, count() FROM neuron GROUP BY c",
			node:      []string{"materialize(c) AS _syndb_k1, countState() AS _syndb_a1", "GROUP BY c"},
			merge:     []string{"WITH 5 AS c SELECT c, countMerge(_syndb_a1) AS `count()`", "GROUP BY _syndb_k1"},
			aggregate: true, limit: 1000},
		{name: "aliases ClickHouse reads as numbers are quoted", sql: "SELECT voxel_volume AS nan, cid AS inf FROM neuron",
			node: []string{"voxel_volume AS `nan`, cid AS `inf`"}, merge: []string{"SELECT _node, `nan`, `inf` FROM"}, min: 2, limit: 1000},
		{name: "star reads every column in table order", sql: "SELECT * FROM neuron", node: []string{"dataset_id AS _syndb_c1, cid AS _syndb_c2, voxel_volume AS _syndb_c3, neuron_type AS _syndb_c4"}, min: 2, limit: 1000},
		{name: "newer column raises the need", sql: "SELECT cid FROM synapse WHERE cleft_width > 2", min: 4, limit: 1000},
		{name: "limit above the cap is lowered", sql: "SELECT cid FROM neuron LIMIT 5000", merge: []string{"LIMIT 0, 1000"}, min: 2, limit: 1000, truncated: true},
		{name: "offset: each node sends offset+limit", sql: "SELECT cid FROM neuron ORDER BY cid LIMIT 10, 5", node: []string{"LIMIT 0, 15"}, merge: []string{"LIMIT 10, 5"}, min: 2, limit: 5},
		{name: "combinators and count distinct", sql: "SELECT countIf(voxel_volume > 1), count(DISTINCT cid), uniqExact(cid) FROM neuron",
			node: []string{"countIfState(voxel_volume > 1)", "uniqExactState(cid) AS _syndb_a2", "uniqExactState(cid) AS _syndb_a3"}, merge: []string{"countIfMerge(_syndb_a1)", "uniqExactMerge(_syndb_a2) AS `count(DISTINCT cid)`"},
			aggregate: true, min: 2, limit: 1000},
		{name: "WITH constants reach both sides", sql: "WITH 0.5 AS t SELECT countIf(voxel_volume > t) AS n FROM neuron HAVING n > t",
			node: []string{"WITH 0.5 AS t SELECT 'lab-a' AS _node, countIfState(voxel_volume > t)"}, merge: []string{"WITH 0.5 AS t SELECT countIfMerge(_syndb_a1) AS n", "HAVING n > t"},
			aggregate: true, min: 2, limit: 1000},
		{name: "join runs per node", sql: "SELECT n.neuron_type, count() AS c FROM synapse AS s JOIN neuron AS n ON s.pre_id = n.cid GROUP BY n.neuron_type",
			node:  []string{"FROM remote('127.0.0.1:9003', 'syndb', 'synapse', 'default', '') AS s GLOBAL JOIN (SELECT cid AS _syndb_j2_cid, neuron_type AS _syndb_j2_neuron_type FROM remote('127.0.0.1:9003', 'syndb', 'neuron', 'default', '')) AS n ON pre_id = _syndb_j2_cid"},
			merge: []string{"SETTINGS join_default_strictness = 'ALL'"}, aggregate: true, min: 2, limit: 1000},
		{name: "IN subquery runs per node", sql: "SELECT count() FROM vesicle WHERE parent_id IN (SELECT cid FROM pre_synapse WHERE dataset_id = toUUID('00000000-0000-0000-0000-000000000001'))",
			node: []string{"WHERE parent_id GLOBAL IN (SELECT cid FROM remote('127.0.0.1:9003', 'syndb', 'pre_synapse', 'default', '') AS pre_synapse WHERE"}, aggregate: true, min: 2, limit: 1000},
		{name: "fleet scope joins the union", sql: "SELECT count() FROM synapse AS s JOIN neuron AS n ON s.pre_id = n.cid", scope: ScopeFleet,
			merge:     []string{"FROM (SELECT 'lab-a' AS _node, pre_id FROM remote('127.0.0.1:9003', 'syndb', 'synapse', 'default', '') UNION ALL SELECT 'lab-b' AS _node, pre_id FROM remote('10.0.0.2:9000', 'syndb_b', 'synapse', 'reader', 's\\'cret')) AS s JOIN", "join_overflow_mode = 'throw'"},
			aggregate: true, min: 2, limit: 1000},
		{name: "lambda", sql: "SELECT arrayMap(x -> x * 2, [voxel_volume]) AS a FROM neuron", node: []string{"arrayMap(x -> x * 2, [voxel_volume]) AS a"}, min: 2, limit: 1000},
		{name: "distinct orders by its columns", sql: "SELECT DISTINCT neuron_type FROM neuron ORDER BY neuron_type",
			node: []string{"SELECT DISTINCT neuron_type AS _syndb_c1"}, merge: []string{"SELECT DISTINCT _syndb_c1 AS `neuron_type`", "ORDER BY _syndb_c1"}, min: 2, limit: 1000},
		{name: "union all", sql: "SELECT cid FROM neuron UNION ALL SELECT cid FROM mitochondria", merge: []string{") LIMIT 1000"}, min: 2, limit: 1000},
		{name: "limit by", sql: "SELECT dataset_id, cid FROM neuron ORDER BY voxel_volume DESC LIMIT 2 BY dataset_id", node: []string{"LIMIT 2 BY dataset_id"}, merge: []string{"LIMIT 2 BY _syndb_b1"}, min: 2, limit: 1000},
		{name: "prewhere and array join stay on the node", sql: "SELECT a, count() FROM neuron ARRAY JOIN [1, 2] AS a PREWHERE voxel_volume > 1 GROUP BY a",
			node: []string{"ARRAY JOIN [1, 2] AS a PREWHERE voxel_volume > 1"}, aggregate: true, min: 2, limit: 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := parse(t, tc.sql, tc.scope)
			require.Equal(t, tc.aggregate, p.Aggregate)
			require.Equal(t, tc.min, p.MinSchema)
			require.Equal(t, tc.limit, p.Limit)
			require.Equal(t, tc.truncated, p.Truncated)
			plan, err := p.Plan(targets)
			require.NoError(t, err)
			for _, w := range tc.node {
				require.Contains(t, plan.Nodes[0].SQL, w)
			}
			for _, w := range tc.merge {
				require.Contains(t, plan.SQL, w)
			}
			requireSafe(t, plan)
		})
	}
}

// TestNodeShareReadsOnlyItsNode: each node's share names that node's
// address, database and credentials, and no other node's.
func TestNodeShareReadsOnlyItsNode(t *testing.T) {
	t.Parallel()
	p := parse(t, "SELECT n.cid, count() FROM synapse AS s JOIN neuron AS n ON s.pre_id = n.cid WHERE s.pre_id IN (SELECT cid FROM neuron) GROUP BY n.cid", "")
	plan, err := p.Plan(targets)
	require.NoError(t, err)
	require.Len(t, plan.Nodes, 2)
	a, b := plan.Nodes[0].SQL, plan.Nodes[1].SQL
	require.Equal(t, 3, strings.Count(a, "remote('127.0.0.1:9003', 'syndb', "))
	require.NotContains(t, a, "10.0.0.2")
	require.Equal(t, 3, strings.Count(b, "remote('10.0.0.2:9000', 'syndb_b', "))
	require.NotContains(t, b, "127.0.0.1")
	require.Contains(t, plan.Merge, "{lab-a} UNION ALL {lab-b}")
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ sql, why string }{
		{"", "empty"},
		{"DROP TABLE neuron", "only SELECT"},
		{"INSERT INTO neuron (cid) VALUES ('x')", "only SELECT"},
		{"ALTER TABLE neuron DROP COLUMN cid", "only SELECT"},
		{"CREATE TABLE x (a Int8) ENGINE = Memory", "only SELECT"},
		{"SYSTEM SHUTDOWN", "cannot parse"},
		{"KILL QUERY WHERE 1", "cannot parse"},
		{"SELECT cid FROM neuron; DROP TABLE neuron", "one statement"},
		{"SELECT 1 UNION DISTINCT SELECT 2", "UNION DISTINCT"},
		{"SELECT cid FROM secrets", "unknown table"},
		{"SELECT * FROM system.users", "system tables"},
		{"SELECT * FROM system.processes", "system tables"},
		{"SELECT cid FROM default.neuron", "without a database"},
		{"SELECT cid FROM neuron WHERE cid IN (SELECT name FROM system.tables)", "system tables"},
		{"SELECT password FROM neuron", "unknown column"},
		{"SELECT * FROM remote('evil:9000', 'system', 'users')", "table functions"},
		{"SELECT * FROM url('http://evil/', CSV, 'a String')", "table functions"},
		{"SELECT * FROM file('/etc/passwd', CSV, 'a String')", "table functions"},
		{"SELECT * FROM s3('http://minio/b/k', 'CSV')", "table functions"},
		{"SELECT * FROM numbers(10)", "table functions"},
		{"SELECT file('/etc/passwd') FROM neuron", "not allowed"},
		{"SELECT sleep(3) FROM neuron", "not allowed"},
		{"SELECT sleepEachRow(1) FROM neuron", "not allowed"},
		{"SELECT dictGet('d', 'a', toUInt64(1)) FROM neuron", "not allowed"},
		{"SELECT currentUser() FROM neuron", "not allowed"},
		{"SELECT hostName() FROM neuron", "not allowed"},
		{"SELECT joinGet('j', 'v', 1) FROM neuron", "not allowed"},
		{"SELECT cid FROM neuron INTO OUTFILE '/tmp/x'", "INTO OUTFILE"},
		{"SELECT cid FROM neuron FORMAT JSON", "FORMAT"},
		{"SELECT cid FROM neuron SETTINGS readonly = 0", "not allowed"},
		{"SELECT max(y.cid) AS m FROM axon AS x LEFT JOIN neuron AS y USING cid SETTINGS join_use_nulls = 1", "not allowed"},
		{"SELECT cid FROM neuron SETTINGS max_memory_usage = 0", "not allowed"},
		{"SELECT cid FROM neuron SETTINGS max_threads = 1000", "out of range"},
		{"SELECT cid FROM neuron SETTINGS max_execution_time = 100000", "out of range"},
		{"SELECT countState() FROM neuron", "-State and -Merge"},
		{"SELECT cid FROM neuron LIMIT -1", "whole numbers"},
		{"SELECT cid FROM neuron LIMIT cid", "whole numbers"},
		{"SELECT x.cid FROM neuron", "unknown table"},
		{"SELECT cid FROM neuron WHERE cid = ?", "placeholders"},
		{"SELECT cid FROM neuron WHERE cid = {id:UUID}", "placeholders"},
		{"SELECT cid FROM neuron FINAL", "FINAL"},
		{"SELECT cid FROM neuron SAMPLE 0.1", "SAMPLE"},
		{"SELECT count() FROM neuron GROUP BY dataset_id WITH TOTALS", "TOTALS"},
		{"SELECT cid FROM neuron, synapse", "comma joins"},
		{"SELECT count() FROM neuron WHERE cid GLOBAL IN (SELECT pre_id FROM synapse)", "GLOBAL"},
		{"SELECT * FROM neuron AS n JOIN synapse AS s ON n.cid = s.pre_id", "one table"},
		{"SELECT sum(count()) FROM neuron", "inside another aggregate"},
		{"SELECT cid, count() FROM neuron GROUP BY dataset_id", "GROUP BY or inside an aggregate"},
		{"SELECT cid AS _syndb_c1 FROM neuron", "cannot be used as a name"},
		{"SELECT cid AS `settings` FROM neuron", "cannot be used as a name"},
		{"SELECT cid FROM neuron WHERE neuron_type = 'a\\' OR 1=1'", "backslashes"},
		{"SELECT row_number() OVER () FROM neuron", ""},
		{"WITH x AS (SELECT 1) SELECT * FROM x", "WITH name AS (subquery)"},
		{"SELECT arrayReduce('sum', [1]) FROM neuron", "not allowed"},
		{"SELECT _node FROM (SELECT _node FROM neuron)", "outermost"},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tc.sql, testCatalog, Options{MaxRows: 1000, MaxSeconds: 60})
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrInvalid), "%v", err)
			require.Contains(t, err.Error(), tc.why)
		})
	}
}

func TestCompileRefusesBadRegistryEntries(t *testing.T) {
	t.Parallel()
	p := parse(t, "SELECT cid FROM neuron", "")
	for _, bad := range []Target{
		{Name: "lab-a", Addr: "h:1') UNION ALL SELECT * FROM system.users --", Database: "syndb"},
		{Name: "Lab A", Addr: "h:1", Database: "syndb"},
		{Name: "lab-a", Addr: "h:1", Database: "syndb; DROP"},
	} {
		_, err := p.Compile([]Target{bad})
		require.Error(t, err, "%+v", bad)
	}
	_, err := p.Compile(nil)
	require.Error(t, err)
}

// TestTargetAddrForms checks the addresses a registry entry or the
// gateways give remote(): one host:port, or replicas a:1|b:2.
func TestTargetAddrForms(t *testing.T) {
	t.Parallel()
	p := parse(t, "SELECT cid FROM neuron", "")
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:9010", true},
		{"gw1:9010|gw2:9010", true},
		{"[::1]:9010|gw-2.example:9010|10.0.0.3:1", true},
		{"gw1:9010|", false},
		{"|gw1:9010", false},
		{"gw1:9010||gw2:9010", false},
		{"gw1:9010,gw2:9010", false},
		{"gw1|gw2:9010", false},
		{"gw1:9010|gw2:9010') --", false},
	} {
		sql, err := p.Compile([]Target{{Name: "lab-a", Addr: tc.addr, Database: "syndb", User: "lab-a"}})
		if !tc.ok {
			require.Error(t, err, tc.addr)
			continue
		}
		require.NoError(t, err, tc.addr)
		require.Contains(t, sql, "remote('"+tc.addr+"', 'syndb', 'neuron', 'lab-a', '')")
	}
}

// injection is the trick of an earlier parser: a backtick name ending in a
// backslash, which ClickHouse reads as an escaped backtick.
const injection = "SELECT count() AS `x\\`, 1 AS ` , groupArray(name) FROM remote('127.0.0.1:9004', system.databases) -- ` FROM neuron"

func TestInjectionRefused(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		injection,
		"SELECT cid AS ` , 1 FROM remote('127.0.0.1:9004', system.processes) -- ` FROM neuron",
		"SELECT `x\\`.cid FROM neuron AS `x\\`",
		"SELECT cid FROM neuron AS `n\\` WHERE 1 = 1",
		"SELECT cid AS `a\nb` FROM neuron",
		"SELECT cid AS `system` FROM neuron",
		"SELECT url('http://evil/', 'CSV', 'x String') FROM neuron",
		"SELECT `remote`('h:1', 'system', 'one') FROM neuron",
		"SELECT cid FROM neuron WHERE cid IN neuron",
		"SELECT cid FROM neuron WHERE neuron_type = 'it\\'s' OR 1 = 1",
	} {
		_, err := Parse(sql, testCatalog, Options{MaxRows: 1000})
		require.ErrorIs(t, err, ErrInvalid, "%s", sql)
	}
}

// nestedCase is n CASE expressions, each inside the previous one's THEN.
func nestedCase(n int) string {
	return "SELECT " + strings.Repeat("CASE WHEN cid = 1 THEN ", n) + "1" + strings.Repeat(" ELSE 0 END", n) + " AS x FROM neuron"
}

func TestDepthBound(t *testing.T) {
	t.Parallel()
	_, err := Parse(nestedCase(1000), testCatalog, Options{MaxRows: 1000})
	require.ErrorIs(t, err, ErrInvalid)
	require.Contains(t, err.Error(), "nest more than")
	_, err = Parse("SELECT "+strings.Repeat("(", 200)+"cid"+strings.Repeat(")", 200)+" FROM neuron", testCatalog, Options{MaxRows: 1000})
	require.ErrorIs(t, err, ErrInvalid)
	p := parse(t, nestedCase(10), "")
	_, err = p.Compile(targets)
	require.NoError(t, err)
}

// requireSafe asserts the invariant of a compiled statement, read as
// ClickHouse reads it: its table functions are exactly the compiler's
// remote() calls on the targets, every function is allowlisted, and no
// FORMAT, INTO or system table appears outside string literals.
func requireSafe(t testing.TB, plan *Plan) {
	t.Helper()
	out := plan.SQL
	if i := strings.Index(out, " SETTINGS "); i >= 0 {
		out = out[:i]
	}
	require.NoError(t, checkCompiled(out, plan.remotes), out)
	toks, err := chTokens(out)
	require.NoError(t, err, out)
	for i, tk := range toks {
		if tk.kind != tokWord && tk.kind != tokQuoted {
			continue
		}
		low := strings.ToLower(tk.text)
		require.NotContains(t, []string{"settings", "format", "system", "into"}, low, out)
		if i+1 < len(toks) && toks[i+1].text == "(" && toks[i+1].kind == tokPunct && low != "remote" && (tk.kind != tokWord || !notFunctions[low]) {
			require.True(t, compiledFunction(low), "function %s in %s", tk.text, out)
		}
	}
	for _, rc := range plan.remotes {
		require.Contains(t, out, "remote("+quote(rc.target.Addr)+", "+quote(rc.target.Database)+", "+quote(rc.table)+", ")
	}
}

// TestCompiledCheckCatchesTampering: a compiled statement with a remote()
// the compiler did not write, or one moved to another address, is refused.
func TestCompiledCheckCatchesTampering(t *testing.T) {
	t.Parallel()
	plan, err := parse(t, "SELECT cid FROM neuron LIMIT 10", "").Plan(targets)
	require.NoError(t, err)
	require.NoError(t, checkCompiled(plan.SQL, plan.remotes))
	extra := strings.Replace(plan.SQL, " LIMIT 0, 10", " UNION ALL SELECT * FROM remote('127.0.0.1:9004', 'system', 'databases') LIMIT 0, 10", 1)
	require.Error(t, checkCompiled(extra, plan.remotes))
	moved := strings.Replace(plan.SQL, "'127.0.0.1:9003'", "'127.0.0.1:9004'", 1)
	require.Error(t, checkCompiled(moved, plan.remotes))
	table := strings.Replace(plan.SQL, "FROM remote(", "FROM system.one, remote(", 1)
	require.Error(t, checkCompiled(table, plan.remotes))
	fn := strings.Replace(plan.SQL, "cid AS", "hostName() AS", 1)
	require.Error(t, checkCompiled(fn, plan.remotes))
}

// TestCapped: a query runs capped at the hub's row limit when it has no
// LIMIT, or one above the cap, or is a UNION ALL; not under a LIMIT of its
// own at or below the cap.
func TestCapped(t *testing.T) {
	t.Parallel()
	for sql, capped := range map[string]bool{
		"SELECT cid FROM neuron":                                  true,
		"SELECT cid FROM neuron LIMIT 5000":                       true,
		"SELECT cid FROM neuron LIMIT 1000":                       false,
		"SELECT cid FROM neuron LIMIT 10, 5":                      false,
		"SELECT count() FROM neuron":                              true,
		"SELECT cid FROM neuron UNION ALL SELECT cid FROM neuron": true,
	} {
		p, err := Parse(sql, testCatalog, Options{MaxRows: 1000, MaxSeconds: 60})
		require.NoError(t, err, sql)
		require.Equal(t, capped, p.Capped, sql)
	}
}

// TestNullLiteral: NULL is a literal, not a column, wherever a value goes;
// a column named null in back-quotes is still a name.
func TestNullLiteral(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		"SELECT NULL",
		"SELECT coalesce(voxel_volume, NULL) FROM neuron",
		"SELECT has([NULL], NULL)",
		"SELECT cid FROM neuron WHERE voxel_volume IS NOT NULL AND ifNull(voxel_volume, null) > 1",
	} {
		p, err := Parse(sql, testCatalog, Options{MaxRows: 1000, MaxSeconds: 60})
		require.NoError(t, err, sql)
		plan, err := p.Compile(targets)
		require.NoError(t, err, sql)
		// NULL is read as a name only as the name of its column.
		require.Equal(t, strings.Count(plan, "AS `NULL`"), strings.Count(plan, "`NULL`"), sql)
		require.NotContains(t, plan, "`null`", sql)
	}
	p := parse(t, "SELECT NULL AS x, cid FROM neuron", ScopeNode)
	plan, err := p.Compile(targets)
	require.NoError(t, err)
	require.Contains(t, plan, "[NULL][materialize(1)] AS x", "a NULL column is a constant, not materialised: materialize(NULL) stays one")
	_, err = Parse("SELECT `null` FROM neuron", testCatalog, Options{MaxRows: 1000, MaxSeconds: 60})
	require.ErrorContains(t, err, `unknown column "null"`)
}

// nullableCompiler compiles a statement for one node over the test catalog
// with neuron.voxel_volume Nullable.
func nullableCompiler(t *testing.T) func(sql string) string {
	cat := testCatalog.WithTypes(map[string]map[string]string{
		"neuron": {"voxel_volume": "Nullable(Float64)", "neuron_type": "String", "cid": "UUID"},
	})
	return func(sql string) string {
		t.Helper()
		p, err := Parse(sql, cat, Options{MaxRows: 1000, MaxSeconds: 60})
		require.NoError(t, err, sql)
		plan, err := p.Compile(targets[:1])
		require.NoError(t, err, sql)
		return plan
	}
}

// TestNullableAggregates: an aggregate that reads a Nullable column as a
// whole argument travels with the count of the rows where it is set, and
// the hub answers NULL where that count is 0, as ClickHouse does; count,
// array answers and non-Nullable columns travel as before. An -If
// aggregate counts the rows where its value and its condition are set.
func TestNullableAggregates(t *testing.T) {
	t.Parallel()
	compile := nullableCompiler(t)
	plan := compile("SELECT sum(voxel_volume) AS s, min(voxel_volume), argMax(cid, voxel_volume), count(DISTINCT voxel_volume), " +
		"count(voxel_volume), groupArray(voxel_volume), sumIf(voxel_volume, cid != cid), max(neuron_type) FROM neuron")
	for _, want := range []string{
		"sumState(voxel_volume) AS _syndb_a1, countState(voxel_volume) AS _syndb_n1",
		"minState(voxel_volume) AS _syndb_a2, countState(voxel_volume) AS _syndb_n2",
		"argMaxState(cid, voxel_volume) AS _syndb_a3, countState(voxel_volume) AS _syndb_n3",
		"uniqExactState(voxel_volume) AS _syndb_a4, countState(voxel_volume) AS _syndb_n4",
		"if(countMerge(_syndb_n1) = 0, NULL, sumMerge(_syndb_a1)) AS s",
		"if(countMerge(_syndb_n2) = 0, NULL, minMerge(_syndb_a2))",
		"if(countMerge(_syndb_n4) = 0, NULL, uniqExactMerge(_syndb_a4))",
		"sumIfState(voxel_volume, cid != cid) AS _syndb_a7, countState(voxel_volume) AS _syndb_n7",
		"if(countMerge(_syndb_n7) = 0, NULL, sumIfMerge(_syndb_a7))",
	} {
		require.Contains(t, plan, want)
	}
	for _, none := range []string{"_syndb_n5", "_syndb_n6", "_syndb_n8"} {
		require.NotContains(t, plan, none, "count, an array and a String column travel as before")
	}
	plan = compile("SELECT countIf(voxel_volume > 1), countIf(cid = cid), maxIf(neuron_type, voxel_volume > 1), " +
		"groupArrayIf(voxel_volume, voxel_volume > 1), argMaxIf(cid, voxel_volume, cid = cid) FROM neuron")
	for _, want := range []string{
		"countIfState(voxel_volume > 1) AS _syndb_a1, countState(voxel_volume > 1) AS _syndb_n1",
		"if(countMerge(_syndb_n1) = 0, NULL, countIfMerge(_syndb_a1))",
		"maxIfState(neuron_type, voxel_volume > 1) AS _syndb_a3, countState(voxel_volume > 1) AS _syndb_n3",
		"argMaxIfState(cid, voxel_volume, cid = cid) AS _syndb_a5, countState(voxel_volume) AS _syndb_n5",
	} {
		require.Contains(t, plan, want)
	}
	for _, none := range []string{"_syndb_n2", "_syndb_n4"} {
		require.NotContains(t, plan, none, "countIf of a set condition and an array travel as before")
	}
	require.NotContains(t, compile("SELECT sum(voxel_volume) FROM vesicle"), "countState",
		"a column the types do not call Nullable")
	require.Contains(t, compile("SELECT argMax(voxel_volume, voxel_volume) FROM neuron"), "countState(if(isNull(voxel_volume) OR isNull(voxel_volume), NULL, 1))")
	// An expression of a Nullable column, or one that makes NULL, is
	// Nullable; one that ClickHouse answers without NULL is not.
	plan = compile("SELECT sum(voxel_volume + 1), max(if(cid = cid, voxel_volume, NULL)), sum(nullIf(length(neuron_type), 0)), " +
		"max(CASE WHEN cid = cid THEN 1 END), argMax(cid, toString(voxel_volume)), sum(coalesce(voxel_volume, 0)), sum(isNull(voxel_volume)), " +
		"sum(length([voxel_volume])), max(ifNull(voxel_volume, 1)), max(has([1.5], voxel_volume)) FROM neuron")
	for _, want := range []string{
		"countState(voxel_volume + 1) AS _syndb_n1",
		"countState(if(cid = cid, voxel_volume, NULL)) AS _syndb_n2",
		"countState(nullIf(length(neuron_type), 0)) AS _syndb_n3",
		"countState(CASE WHEN cid = cid THEN 1 END) AS _syndb_n4",
		"countState(toString(voxel_volume)) AS _syndb_n5",
		"if(countMerge(_syndb_n1) = 0, NULL, sumMerge(_syndb_a1))",
	} {
		require.Contains(t, plan, want)
	}
	for _, none := range []string{"_syndb_n6", "_syndb_n7", "_syndb_n8", "_syndb_n9", "_syndb_n10"} {
		require.NotContains(t, plan, none, "coalesce, isNull, a function of an array, ifNull of a set value, has are not Nullable")
	}
}

// TestCountStar: count(*) is count(), on the nodes and on the hub; * is
// still refused inside any other call.
func TestCountStar(t *testing.T) {
	t.Parallel()
	plan, err := parse(t, "SELECT count(*) AS n, COUNT(*) AS m FROM neuron WHERE voxel_volume > 1", ScopeNode).Compile(targets)
	require.NoError(t, err)
	require.Contains(t, plan, "countState() AS _syndb_a1")
	require.Contains(t, plan, "countMerge(_syndb_a1) AS n")
	require.Contains(t, plan, "countState() AS _syndb_a2", "an aggregate's -State is spelt as ClickHouse spells it")
	plan, err = parse(t, "SELECT ARGMAX(cid, voxel_volume), Sum(voxel_volume) FROM neuron", ScopeNode).Compile(targets)
	require.NoError(t, err)
	require.Contains(t, plan, "argMaxState(cid, voxel_volume) AS _syndb_a1, sumState(voxel_volume) AS _syndb_a2")
	require.Contains(t, plan, "argMaxMerge(_syndb_a1)")
	_, err = Parse("SELECT sum(*) FROM neuron", testCatalog, Options{MaxRows: 1000, MaxSeconds: 60})
	require.Error(t, err)
}

// TestExtractAndNullsOrder: extract(s, pattern) prints as the function;
// NULLS FIRST and NULLS LAST follow their ORDER BY item on the nodes and on
// the hub, in subqueries too, but not where the query merely says the
// words, and are refused anywhere but after an ORDER BY item.
func TestExtractAndNullsOrder(t *testing.T) {
	t.Parallel()
	plan, err := parse(t, "SELECT cid, extract(neuron_type, 'a+') AS e FROM neuron ORDER BY voxel_volume DESC NULLS FIRST, cid nulls  last LIMIT 5", ScopeNode).Plan(targets)
	require.NoError(t, err)
	require.Contains(t, plan.Nodes[0].SQL, "extract(neuron_type, 'a+') AS e")
	require.Contains(t, plan.Nodes[0].SQL, "ORDER BY voxel_volume DESC NULLS FIRST, cid NULLS LAST LIMIT 0, 5")
	require.Contains(t, plan.Merge, "ORDER BY _syndb_o1 DESC NULLS FIRST, _syndb_o2 NULLS LAST LIMIT 0, 5")
	requireSafe(t, plan)
	plan, err = parse(t, "SELECT c FROM (SELECT cid AS c, voxel_volume AS v FROM neuron ORDER BY v NULLS LAST) WHERE c != c", ScopeFleet).Plan(targets)
	require.NoError(t, err)
	require.Contains(t, plan.SQL, "ORDER BY v NULLS LAST")
	plan, err = parse(t, "SELECT 'NULLS FIRST' AS `nulls last`, cid FROM neuron ORDER BY cid -- NULLS LAST", ScopeNode).Plan(targets)
	require.NoError(t, err)
	require.NotContains(t, plan.SQL, "NULLS LAST")
	require.Contains(t, plan.SQL, "materialize('NULLS FIRST') AS `nulls last`")
	for _, sql := range []string{
		"SELECT cid FROM neuron WHERE cid NULLS FIRST",
		"SELECT cid FROM neuron ORDER BY cid WITH FILL STEP _syndb_nulls_first",
		"SELECT cid FROM neuron ORDER BY cid NULLS FIRST WITH FILL",
		"SELECT EXTRACT(DAY FROM now()) FROM neuron",
		"SELECT extract(neuron_type) FROM neuron",
	} {
		_, err := Parse(sql, testCatalog, Options{MaxRows: 1000, MaxSeconds: 60})
		require.ErrorIs(t, err, ErrInvalid, sql)
		require.NotContains(t, err.Error(), internalPrefix, sql)
	}
}

// TestNullableNames: a name that stands for a Nullable expression (a
// subquery's column, an alias, a WITH name, an ARRAY JOIN alias) makes its
// aggregate travel with the count of its set values; one that stands for
// an expression never NULL does not. An alias of aliases is told once, not
// once per use.
func TestNullableNames(t *testing.T) {
	t.Parallel()
	compile := nullableCompiler(t)
	for _, tc := range []struct{ sql, want string }{
		{"SELECT sum(voxel_volume) FROM (SELECT voxel_volume FROM neuron)", "countState(voxel_volume) AS _syndb_n1"},
		{"SELECT sum(q.v) FROM (SELECT voxel_volume + 1 AS v FROM neuron) AS q", "sumState(v) AS _syndb_a1, countState(v) AS _syndb_n1"},
		{"SELECT sum(v) FROM (SELECT 1 AS v FROM neuron UNION ALL SELECT voxel_volume AS v FROM neuron)", "countState(v) AS _syndb_n1"},
		{"SELECT max(s) FROM (SELECT sum(voxel_volume) AS s FROM neuron)", "countState(s) AS _syndb_n1"},
		{"WITH voxel_volume * 2 AS v SELECT sum(v) FROM neuron", "countState(v) AS _syndb_n1"},
		{"SELECT voxel_volume AS v, sum(v) FROM neuron GROUP BY v", "countState(v) AS _syndb_n1"},
		{"SELECT sum(e) FROM neuron ARRAY JOIN [voxel_volume] AS e", "countState(e) AS _syndb_n1"},
	} {
		require.Contains(t, compile(tc.sql), tc.want, tc.sql)
	}
	for _, sql := range []string{
		"SELECT sum(c) FROM (SELECT coalesce(voxel_volume, 0) AS c FROM neuron)",
		"SELECT sum(n) FROM (SELECT count(voxel_volume) AS n FROM neuron)",
		"SELECT sum(voxel_volume) FROM (SELECT coalesce(voxel_volume, 0) AS voxel_volume FROM neuron)",
		"WITH coalesce(voxel_volume, 0) AS c SELECT sum(c) FROM neuron",
		"SELECT sum(length(g)) FROM (SELECT groupArray(voxel_volume) AS g FROM neuron)",
	} {
		require.NotContains(t, compile(sql), "_syndb_n1", sql)
	}
	chain := make([]string, 40)
	for i := range chain {
		n := strconv.Itoa(i + 1)
		chain[i] = "x" + n + " + x" + n + " AS x" + strconv.Itoa(i+2)
	}
	require.Contains(t, compile("WITH voxel_volume AS x1, "+strings.Join(chain, ", ")+" SELECT sum(x41) FROM neuron"), "countState(x41)")
}
