package fedsql

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
	"github.com/stretchr/testify/require"
)

// The red-team tests hold inputs a reader may send to POST /v1/query and
// what must become of them. A case that fails names a hole; a case that
// passes guards a refusal that works. The semantics the cases rely on were
// checked on ClickHouse 18.16.1 (the hub's version), as noted per case.

var redTeamOpts = Options{MaxRows: 1000, MaxSeconds: 60}

// safeParse runs Parse and Plan for targets, turning a panic into a value:
// a panic on input is a finding of its own, and must not stop the table.
func safeParse(sql string, scope Scope) (plan *Plan, panicked any, err error) {
	defer func() {
		if r := recover(); r != nil {
			plan, panicked, err = nil, r, nil
		}
	}()
	opts := redTeamOpts
	opts.Scope = scope
	p, err := Parse(sql, testCatalog, opts)
	if err != nil {
		return nil, nil, err
	}
	plan, err = p.Plan(targets)
	return plan, nil, err
}

// TestRedTeamRefused: each input must be refused with ErrInvalid (a 400),
// in both scopes, without a panic.
func TestRedTeamRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, sql string }{
		// (a) IN whose right side is a name: ClickHouse 18.16 reads a name
		// that is not a column of the SELECT's sources as a table of the
		// current database (the hub's syndb). The compiler takes any name as
		// a column of a subquery whose columns it does not know, so
		// `x IN (t)` reads table t on the hub: on 18.16,
		// ('admin', 'abc123') IN (api_keys) answered 4 (true), 1 IN
		// (api_keys) answered "Number of columns in section IN doesn't match.
		// 1 at left, 2 at right" (a schema oracle), and a missing table
		// answers "Table syndb.x doesn't exist".
		{"in reads a hub table through an unnamed subquery", "SELECT count() FROM (SELECT cid + 1 FROM neuron) WHERE 'hunter2' IN (tokens)"},
		{"in reads a hub table, qualified", "SELECT count() FROM (SELECT cid + 1 FROM neuron) AS s WHERE 'x' IN (s.tokens)"},
		{"in reads a hub table with a tuple", "SELECT count() FROM (SELECT cid + 1 FROM neuron) WHERE ('admin', 'abc') IN (api_keys)"},
		{"in reads a hub table from a join condition", "SELECT count() FROM (SELECT cid + 1 FROM neuron) AS s JOIN neuron AS n ON 1 IN (s.tokens)"},
		// In fleet scope a qualified real column keeps its qualifier, and
		// 18.16 read `'a' IN (s.neuron_type)` as table syndb.neuron_type.
		{"in reads the table named like a column", "SELECT count() FROM neuron AS s WHERE 'a' IN (s.neuron_type)"},
		{"not in over a name", "SELECT count() FROM (SELECT cid + 1 FROM neuron) WHERE 1 NOT IN (tokens)"},
		// (d) panics: a scalar subquery in an aggregate query's select list or
		// HAVING reaches textOf, whose printer has no analysis (nil
		// dereference); a lambda inside a lambda's body with a non-name
		// parameter list fails a type assertion. The Flight service's gRPC
		// server has no recovery interceptor: one such query stops the API.
		{"panic: scalar subquery beside an aggregate", "SELECT count() * 100 / (SELECT count() FROM neuron) AS pct FROM neuron"},
		{"panic: scalar subquery in a grouped select list", "SELECT dataset_id, count() AS c, (SELECT max(cid) FROM neuron) AS m FROM neuron GROUP BY dataset_id"},
		{"panic: IN subquery in HAVING", "SELECT dataset_id, count() AS c FROM neuron GROUP BY dataset_id HAVING c IN (SELECT count() FROM neuron)"},
		{"panic: lambda with a tuple of numbers as parameters", "SELECT arrayMap(x -> ((1, 2) -> 3), [1]) AS a FROM neuron"},
		// (e) a union whose parts have different widths is an error in
		// ClickHouse; compiled, the plain part gains _node and the widths
		// match, so 18.16 answered rows whose _node column held neuron types.
		{"union of different widths", "SELECT cid FROM neuron UNION ALL SELECT neuron_type, count() FROM neuron GROUP BY neuron_type"},
		// Regression: refusals that hold.
		{"system table", "SELECT name FROM system.tables"},
		{"system table in IN", "SELECT cid FROM neuron WHERE neuron_type IN (SELECT name FROM system.databases)"},
		{"other database", "SELECT cid FROM default.neuron"},
		{"qualified table in IN", "SELECT cid FROM neuron WHERE cid IN (system.one)"},
		{"bare table in IN", "SELECT cid FROM neuron WHERE cid IN neuron"},
		{"table function", "SELECT * FROM remote('127.0.0.1:9000', system.one)"},
		{"table function in a subquery", "SELECT count() FROM (SELECT * FROM url('http://x/', CSV, 'a String'))"},
		{"table function joined", "SELECT count() FROM neuron JOIN numbers(10) AS n ON neuron.cid = n.number"},
		{"quoted remote call", "SELECT `remote`('h:1', 'system', 'one') AS x FROM neuron"},
		{"remote via cast type", "SELECT CAST(cid AS remote('h:1', system, one)) AS x FROM neuron"},
		{"file via cast type", "SELECT CAST(cid AS file(x)) AS x FROM neuron"},
		{"dictGet", "SELECT dictGetString('d', 'a', toUInt64(1)) AS x FROM neuron"},
		{"joinGet", "SELECT joinGet('j', 'v', 1) AS x FROM neuron"},
		{"hasColumnInTable", "SELECT hasColumnInTable('system', 'users', 'name') AS x FROM neuron"},
		{"arrayReduce names an aggregate by string", "SELECT arrayReduce('groupArray', [1]) AS x FROM neuron"},
		{"user -State", "SELECT sumState(cid) AS x FROM neuron"},
		{"user -Merge", "SELECT sumMerge(x) AS y FROM (SELECT sumState(cid) AS x FROM neuron)"},
		{"-ForEach", "SELECT sumForEach([cid]) AS x FROM neuron"},
		{"-Resample", "SELECT sumResample(0, 10, 1)(cid, cid) AS x FROM neuron"},
		{"settings: readonly", "SELECT cid FROM neuron SETTINGS readonly = 0"},
		{"settings: memory", "SELECT cid FROM neuron SETTINGS max_memory_usage = 0"},
		{"settings: join cap", "SELECT cid FROM neuron SETTINGS max_rows_in_join = 0"},
		{"settings: result rows", "SELECT cid FROM neuron SETTINGS max_result_rows = 0"},
		{"settings in a subquery", "SELECT count() FROM (SELECT cid FROM neuron SETTINGS max_threads = 1)"},
		{"settings as text", "SELECT cid FROM neuron SETTINGS max_threads = '1'"},
		{"settings as hex", "SELECT cid FROM neuron SETTINGS max_execution_time = 0xFFFF"},
		{"alias named settings", "SELECT cid AS `SETTINGS` FROM neuron"},
		{"alias named format", "SELECT cid AS format FROM neuron"},
		{"alias with a backslash", "SELECT cid AS `a\\` FROM neuron"},
		{"compiler's own names", "SELECT cid AS _syndb_a1 FROM neuron"},
		{"compiler's own names in WITH", "WITH 1 AS _syndb_k1 SELECT cid FROM neuron"},
		{"compiler's own names as lambda parameter", "SELECT arrayMap(_syndb_k1 -> 1, [1]) AS a FROM neuron"},
		{"string escapes", "SELECT cid FROM neuron WHERE neuron_type = 'a\\'b'"},
		{"unterminated comment", "SELECT cid FROM neuron /* x"},
		{"deep nesting", "SELECT " + strings.Repeat("(", 5000) + "cid" + strings.Repeat(")", 5000) + " FROM neuron"},
		// (d) MaxDepth counts expressions and IN/scalar subqueries, not
		// subqueries in FROM: 3,000 of them (48 KiB compiled, under the hub's
		// max_query_size) crashed ClickHouse 18.16 (stack overflow in
		// IAST::checkDepthImpl, the server process gone), and the hub with it.
		{"deep FROM subqueries", strings.Repeat("SELECT c FROM (", 200) + "SELECT cid AS c FROM neuron" + strings.Repeat(")", 200)},
		{"deep FROM subqueries, crash size", strings.Repeat("SELECT c FROM (", 3000) + "SELECT cid AS c FROM neuron" + strings.Repeat(")", 3000)},
		{"deep lambdas", "SELECT " + strings.Repeat("arrayMap(x -> ", 500) + "x" + strings.Repeat(", [1])", 500) + " AS a FROM neuron"},
		{"too long", "SELECT cid FROM neuron WHERE cid IN (1" + strings.Repeat(", 1", 30000) + ")"},
		{"placeholder", "SELECT cid FROM neuron WHERE cid = {x:UInt64}"},
		{"_node in a subquery", "SELECT count() FROM (SELECT _node FROM neuron)"},
	} {
		for _, scope := range []Scope{ScopeNode, ScopeFleet} {
			t.Run(string(scope)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				plan, panicked, err := safeParse(tc.sql, scope)
				require.Nil(t, panicked, "Parse panicked on %s", tc.sql)
				if err == nil && scope == ScopeFleet && strings.HasPrefix(tc.name, "panic: ") && strings.Contains(tc.name, "subquery") {
					// The fleet runs the whole query on the hub: a subquery
					// beside an aggregate is plain ClickHouse there.
					requireSafe(t, plan)
					return
				}
				if err == nil {
					t.Fatalf("accepted %s\ncompiled: %s", tc.sql, plan.SQL)
				}
				require.ErrorIs(t, err, ErrInvalid, tc.sql)
			})
		}
	}
}

// TestRedTeamAmplification: the compiled statement must fit the hub's
// max_query_size (262144 bytes in the query profile) or be refused before
// it is built: 62 KiB of UNION ALL compiled for 20 nodes was 5.4 MB with
// 38,020 remote() calls and took seconds of the API's CPU, only for
// ClickHouse to refuse it.
func TestRedTeamAmplification(t *testing.T) {
	t.Parallel()
	var many []Target
	for i := range 20 {
		many = append(many, Target{Name: fmt.Sprintf("lab-%d", i), Addr: fmt.Sprintf("10.0.0.%d:9000", i+1), Database: "syndb", User: "reader"})
	}
	sql := "SELECT cid FROM neuron" + strings.Repeat(" UNION ALL SELECT cid FROM neuron", 200)
	p, err := Parse(sql, testCatalog, redTeamOpts)
	if err != nil {
		require.ErrorIs(t, err, ErrInvalid)
		return
	}
	plan, err := p.Plan(many)
	if err != nil {
		require.ErrorIs(t, err, ErrInvalid)
		return
	}
	require.LessOrEqual(t, len(plan.SQL), 262144, "a %d-byte query compiled to %d bytes, %d remote() calls", len(sql), len(plan.SQL), len(plan.remotes))
}

// limitOffsetBy is LIMIT m, n BY, which ClickHouse 18.16 does not parse.
var limitOffsetBy = regexp.MustCompile(`LIMIT \d+, \d+ BY`)

// TestRedTeamSemantics: each accepted input must compile to a statement
// that answers what ClickHouse answers over the union of the nodes' rows.
// A case may also pass by refusing the input with ErrInvalid.
func TestRedTeamSemantics(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, sql string
		check     func(t *testing.T, plan *Plan)
	}{
		{
			// The group key's alias is _node: nameKeys names the key's column
			// _node, and the node then groups by its own name instead of
			// neuron_type. On 18.16 the compiled statement answered one row
			// (lab-a, 4) for three neuron types.
			name: "alias _node on a group key", sql: "SELECT neuron_type AS _node, count() AS c FROM neuron GROUP BY neuron_type",
			check: func(t *testing.T, plan *Plan) {
				require.Contains(t, plan.Nodes[0].SQL, "neuron_type", "the node must compute the group key")
			},
		},
		{
			// ClickHouse reads a select alias everywhere in its SELECT, also
			// inside aggregates: sum(voxel_volume) is sum(1) here (18.16: 4
			// over four rows). The node's share drops the select list, so it
			// sums the column (18.16: 100).
			name: "select alias shadows a column inside an aggregate", sql: "SELECT 1 AS voxel_volume, sum(voxel_volume) AS s FROM neuron",
			check: func(t *testing.T, plan *Plan) {
				requireAliasDefined(t, plan.Nodes[0].SQL, "voxel_volume")
			},
		},
		{
			// The same in WHERE: 18.16 answered no row (cid * 0 > 1 is
			// false); compiled, it answered a group per cid.
			name: "select alias shadows a column in WHERE of a grouped query", sql: "SELECT cid * 0 AS voxel_volume, count() AS c FROM neuron WHERE voxel_volume > 1 GROUP BY cid",
			check: func(t *testing.T, plan *Plan) {
				requireAliasDefined(t, plan.Nodes[0].SQL, "voxel_volume")
			},
		},
		{
			// The merge query replaces every expression whose text is a group
			// key, also a lambda's parameter of the same name: 18.16 answered
			// [2,4] per cid, the compiled statement [2*cid, 2*cid].
			name: "lambda parameter named like a group key", sql: "SELECT cid, arrayMap(cid -> cid * 2, [1, 2]) AS a, count() AS c FROM neuron GROUP BY cid",
			check: func(t *testing.T, plan *Plan) {
				require.Contains(t, plan.Merge, "arrayMap(cid -> cid * 2, [1, 2])")
			},
		},
		{
			// LIMIT m, n BY: the node applies the offset and the hub applies
			// it again (rows 2..3 of each key become rows 3..4), and 18.16
			// refuses the text outright ("Syntax error: failed at position
			// ...: BY dataset_id").
			name: "limit by with an offset", sql: "SELECT cid FROM neuron ORDER BY cid LIMIT 1, 2 BY dataset_id",
			check: func(t *testing.T, plan *Plan) {
				require.NotRegexp(t, limitOffsetBy, plan.SQL)
			},
		},
		{
			// A lambda in a lambda's body whose parameter is not a name loses
			// its left side: "x + 1 -> 2" is printed "x +  -> 2".
			name: "lambda arrow after an operator", sql: "SELECT arrayMap(x -> (x + 1 -> 2), [1]) AS a FROM neuron",
			check: func(t *testing.T, plan *Plan) {
				require.NotContains(t, plan.SQL, "+  ->")
			},
		},
		{
			// A DISTINCT part has no _node column and a plain part has one:
			// 18.16 refused the compiled union ("Different number of columns
			// in UNION ALL elements"), a query it answers when run directly.
			name: "union of a distinct and a plain part", sql: "SELECT DISTINCT neuron_type FROM neuron UNION ALL SELECT neuron_type FROM neuron",
			check: func(t *testing.T, plan *Plan) {
				w := unionWidths(t, plan.SQL)
				require.Len(t, w, 2)
				require.Equal(t, w[0], w[1], "union parts of %v columns", w)
			},
		},
		{
			// Two select items with the same text get two compiled columns
			// under one alias: 18.16 refused "Different expressions with the
			// same alias cid".
			name: "the same column twice", sql: "SELECT cid, cid FROM neuron",
			check: func(t *testing.T, plan *Plan) {
				require.NotContains(t, plan.SQL, "_syndb_c1 AS `cid`, _syndb_c2 AS `cid`")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan, panicked, err := safeParse(tc.sql, ScopeNode)
			require.Nil(t, panicked, "Parse panicked on %s", tc.sql)
			if err != nil {
				require.ErrorIs(t, err, ErrInvalid, tc.sql)
				return
			}
			tc.check(t, plan)
		})
	}
}

// requireAliasDefined asserts that a node's share defines alias, which the
// user's query uses in place of the column of the same name.
func requireAliasDefined(t *testing.T, node, alias string) {
	t.Helper()
	require.Contains(t, node, " AS "+alias, "the node's share reads %s as the column, not as the query's alias: %s", alias, node)
}

// unionWidths parses a compiled UNION ALL (SELECT * FROM (a UNION ALL b)
// LIMIT n) and returns the number of select items of each part.
func unionWidths(t *testing.T, sql string) []int {
	t.Helper()
	stmts, err := chp.NewParser(sql).ParseStmts()
	require.NoError(t, err)
	q, ok := stmts[0].(*chp.SelectQuery)
	require.True(t, ok)
	require.NotNil(t, q.From)
	found, ok := chp.Find(q.From.Expr, func(n chp.Expr) bool {
		_, ok := n.(*chp.SubQuery)
		return ok
	})
	require.True(t, ok)
	var out []int
	for part := found.(*chp.SubQuery).Select; part != nil; part = part.UnionAll {
		out = append(out, len(part.SelectItems))
	}
	return out
}

// TestRedTeamAccepted: plain queries the allowlist means to accept must
// compile.
func TestRedTeamAccepted(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		// The backstop refuses every CAST: "cast" is a keyword the printer
		// writes before a parenthesis, but not one of notFunctions, so
		// checkCompiled reads it as a function off the allowlist.
		"SELECT CAST(cid AS String) AS s FROM neuron",
		// A negated negative number prints as "--1", which ClickHouse and
		// checkCompiled read as a comment.
		"SELECT - -1 AS x FROM neuron",
		// Regression: wide but flat inputs stay cheap.
		"SELECT cid FROM neuron WHERE cid IN (1" + strings.Repeat(", 1", 5000) + ")",
		"SELECT count()" + strings.Repeat(", sum(cid)", 2000) + " FROM neuron",
	} {
		t.Run(sql[:min(len(sql), 60)], func(t *testing.T) {
			t.Parallel()
			_, panicked, err := safeParse(sql, ScopeNode)
			require.Nil(t, panicked)
			require.NoError(t, err, sql)
		})
	}
}

// TestRedTeamTerminates: Parse must return on every input. checkLexical
// refuses the unterminated comments on which the parser loops forever, but
// it reads a backslash inside a `name` or "name" as an escape, as
// ClickHouse does, and the parser's lexer does not: to checkLexical the
// comment below sits inside a name, to the lexer it opens after the name
// `a\` and never ends, and its loop spins a core for good. A few such
// requests stop the API.
func TestRedTeamTerminates(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		"SELECT `a\\` /* ` FROM neuron",
		"SELECT \"a\\\" /* \" FROM neuron",
		"SELECT cid FROM neuron WHERE neuron_type = `x\\` /* `",
		// Regression: what checkLexical and the lexer agree on.
		"SELECT cid FROM neuron /* open",
		"SELECT cid FROM neuron WHERE neuron_type = 'open",
		"SELECT `open FROM neuron",
		"SELECT `a\\` -- ` FROM neuron",
	} {
		t.Run(sql, func(t *testing.T) {
			t.Parallel()
			done := make(chan error, 1)
			go func() {
				_, panicked, err := safeParse(sql, ScopeNode)
				if panicked != nil {
					err = fmt.Errorf("panic: %v", panicked)
				}
				done <- err
			}()
			select {
			case err := <-done:
				require.ErrorIs(t, err, ErrInvalid, sql)
			case <-time.After(5 * time.Second):
				t.Fatalf("Parse did not return within 5s on %q", sql)
			}
		})
	}
}
