package fedsql

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/xwb1989/sqlparser"
)

var testCatalog = Catalog{
	"neuron":       {"dataset_id": 2, "cid": 2, "voxel_volume": 2, "neuron_type": 2},
	"mitochondria": {"dataset_id": 2, "cid": 2, "cristae_count": 3},
}

var targets = []Target{
	{Name: "lab-a", Addr: "127.0.0.1:9003", Database: "syndb", User: "default"},
	{Name: "lab-b", Addr: "10.0.0.2:9000", Database: "syndb", User: "reader", Password: "s'cret"},
}

func TestCompile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, sql string
		want      []string // substrings of the compiled query
		aggregate bool
		min       int
		limit     int
		truncated bool
	}{
		{name: "plain rows get their node", sql: "SELECT cid, voxel_volume FROM neuron WHERE voxel_volume > 1.5",
			want: []string{"select _node, cid, voxel_volume from (SELECT 'lab-a' AS _node, * FROM remote('127.0.0.1:9003', 'syndb', 'neuron', 'default', '') UNION ALL SELECT 'lab-b' AS _node, * FROM remote('10.0.0.2:9000', 'syndb', 'neuron', 'reader', 's\\'cret')) as neuron where voxel_volume > 1.5 limit 1000"},
			min:  2, limit: 1000},
		{name: "count over the union", sql: "select count(*) from neuron", want: []string{"select count(*) from (SELECT"}, aggregate: true, min: 0, limit: 1000},
		{name: "group by node", sql: "SELECT _node, count() AS n FROM neuron GROUP BY _node ORDER BY n DESC", want: []string{"select _node, count() as n from", "group by _node order by n desc"}, aggregate: true, limit: 1000},
		{name: "star needs every column's version", sql: "SELECT * FROM mitochondria", want: []string{"select * from ("}, min: 3, limit: 1000},
		{name: "newer column raises the need", sql: "SELECT cid FROM mitochondria WHERE cristae_count > 2", min: 3, limit: 1000},
		{name: "alias", sql: "SELECT m.cid FROM mitochondria AS m LIMIT 10", want: []string{"as m limit 10"}, min: 2, limit: 10},
		{name: "limit above the cap is lowered", sql: "SELECT cid FROM neuron LIMIT 5000", want: []string{"limit 1000"}, min: 2, limit: 1000, truncated: true},
		{name: "ClickHouse aggregate", sql: "SELECT dataset_id, uniq(cid) FROM neuron GROUP BY dataset_id", aggregate: true, min: 2, limit: 1000},
		{name: "trailing semicolon", sql: "SELECT cid FROM neuron;", min: 2, limit: 1000},
		{name: "semicolon inside a string", sql: "SELECT cid FROM neuron WHERE neuron_type = 'a;b'", want: []string{"'a;b'"}, min: 2, limit: 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse(tc.sql, testCatalog, 1000)
			require.NoError(t, err)
			require.Equal(t, tc.aggregate, p.Aggregate)
			require.Equal(t, tc.min, p.MinSchema)
			require.Equal(t, tc.limit, p.Limit)
			require.Equal(t, tc.truncated, p.Truncated)
			out, err := p.Compile(targets)
			require.NoError(t, err)
			for _, w := range tc.want {
				require.Contains(t, out, w)
			}
			require.Equal(t, 2, strings.Count(out, "remote("), "one remote() per node")
		})
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ sql, why string }{
		{"", "empty"},
		{"DROP TABLE neuron", "only SELECT"},
		{"INSERT INTO neuron (cid) VALUES ('x')", "only SELECT"},
		{"DELETE FROM neuron", "only SELECT"},
		{"UPDATE neuron SET cid = 1", "only SELECT"},
		{"ALTER TABLE neuron DROP COLUMN cid", "only SELECT"},
		{"SELECT cid FROM neuron; DROP TABLE neuron", "one statement"},
		{"SELECT 1 UNION SELECT 2", "only SELECT"},
		{"SELECT cid FROM secrets", "unknown table"},
		{"SELECT cid FROM system.users", "without a database"},
		{"SELECT password FROM neuron", "no column"},
		{"SELECT cid FROM neuron, mitochondria", "joins"},
		{"SELECT n.cid FROM neuron n JOIN mitochondria m ON n.cid = m.cid", "joins"},
		{"SELECT cid FROM (SELECT cid FROM neuron) AS x", "subqueries"},
		{"SELECT cid FROM neuron WHERE cid IN (SELECT cid FROM mitochondria)", "subqueries"},
		{"SELECT file('/etc/passwd') FROM neuron", "not allowed"},
		{"SELECT remote('evil:9000', 'system', 'users') FROM neuron", "not allowed"},
		{"SELECT sleep(3) FROM neuron", "not allowed"},
		{"SELECT cid FROM neuron LIMIT -1", "whole numbers"},
		{"SELECT cid FROM neuron LIMIT cid", "whole numbers"},
		{"SELECT cid FROM neuron FOR UPDATE", "locking"},
		{"SELECT x.cid FROM neuron", "unknown table"},
		{"SELECT cid FROM neuron WHERE neuron_type = '' OR 1=1 --'", ""},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			t.Parallel()
			p, err := Parse(tc.sql, testCatalog, 1000)
			if tc.why == "" {
				// Comment and tautology tricks parse as plain SQL and stay
				// inside the one federated table.
				require.NoError(t, err)
				out, err := p.Compile(targets)
				require.NoError(t, err)
				require.NotContains(t, out, "--")
				return
			}
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrInvalid), "%v", err)
			require.Contains(t, err.Error(), tc.why)
		})
	}
}

func TestCompileRefusesBadRegistryEntries(t *testing.T) {
	t.Parallel()
	p, err := Parse("SELECT cid FROM neuron", testCatalog, 10)
	require.NoError(t, err)
	for _, bad := range []Target{
		{Name: "lab-a", Addr: "h:1') UNION ALL SELECT * FROM system.users --", Database: "syndb"},
		{Name: "Lab A", Addr: "h:1", Database: "syndb"},
		{Name: "lab-a", Addr: "h:1", Database: "syndb; DROP"},
	} {
		_, err := p.Compile([]Target{bad})
		require.Error(t, err, "%+v", bad)
	}
	_, err = p.Compile(nil)
	require.Error(t, err)
}

// injection is the trick of issue 11: a backtick name ending in a backslash,
// which ClickHouse reads as an escaped backtick, so the rest of the text
// became the user's own SQL reading another server's system tables.
const injection = "SELECT count() AS `x\\`, 1 AS ` , groupArray(name) FROM remote('127.0.0.1:9004', system.databases) -- ` FROM neuron"

func TestInjectionRefused(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		injection,
		// The same trick without a backslash, and with the names elsewhere.
		"SELECT cid AS ` , 1 FROM remote('127.0.0.1:9004', system.processes) -- ` FROM neuron",
		"SELECT `x\\`.cid FROM neuron AS `x\\`",
		"SELECT cid FROM neuron AS `n\\` WHERE 1 = 1",
		"SELECT count() AS `settings` FROM neuron",
		"SELECT cid AS `a\nb` FROM neuron",
		"SELECT cid AS `system` FROM neuron",
		"SELECT cid FROM neuron WHERE cid > interval 1 `day) FROM remote('h:1', system.one) --`",
		"SELECT url('http://evil/', 'CSV', 'x String') FROM neuron",
		"SELECT dictGet('d', 'a', toUInt64(1)) FROM neuron",
		"SELECT currentUser() FROM neuron",
		"SELECT sleep(3) FROM neuron",
		"SELECT `remote`('h:1', 'system', 'one') FROM neuron",
		"SELECT cid FROM neuron WHERE neuron_type REGEXP 'a'",
		"SELECT cid FROM neuron WHERE cid <=> 1",
		"SELECT voxel_volume -> '$.a' FROM neuron",
	} {
		_, err := Parse(sql, testCatalog, 1000)
		require.ErrorIs(t, err, ErrInvalid, "%s", sql)
	}
}

func TestPlaceholdersRefused(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{"SELECT voxel_volume = ? FROM neuron", "SELECT cid FROM neuron WHERE cid = :id"} {
		_, err := Parse(sql, testCatalog, 1000)
		require.ErrorIs(t, err, ErrInvalid)
		require.Contains(t, err.Error(), "placeholders")
	}
}

// nestedCase is n CASE expressions, each inside the previous one's THEN.
func nestedCase(n int) string {
	return "SELECT " + strings.Repeat("CASE WHEN cid = 1 THEN ", n) + "1" + strings.Repeat(" ELSE 0 END", n) + " AS x FROM neuron"
}

func TestDepthBound(t *testing.T) {
	t.Parallel()
	deep := nestedCase(1000)
	require.Greater(t, len(deep), 20_000)
	_, err := Parse(deep, testCatalog, 1000)
	require.ErrorIs(t, err, ErrInvalid)
	require.Contains(t, err.Error(), "nest more than")

	_, err = Parse("SELECT "+strings.Repeat("(", 200)+"cid"+strings.Repeat(")", 200)+" FROM neuron", testCatalog, 1000)
	require.ErrorIs(t, err, ErrInvalid)

	// Everyday nesting is well inside the bound.
	p, err := Parse(nestedCase(10), testCatalog, 1000)
	require.NoError(t, err)
	_, err = p.Compile(targets)
	require.NoError(t, err)
}

func TestAllowedShapesCompile(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		"SELECT count() AS `my count`, avg(voxel_volume) AS `mean volume` FROM neuron",
		"SELECT cid FROM neuron WHERE neuron_type IN ('a', 'b') AND voxel_volume BETWEEN 1 AND 2",
		"SELECT if(voxel_volume > 1, 'big', 'small') AS size, count() FROM neuron GROUP BY size",
		"SELECT cid FROM neuron WHERE neuron_type LIKE 'py%' AND dataset_id IS NOT NULL ORDER BY cid DESC LIMIT 5",
		"SELECT -voxel_volume, - -voxel_volume, toString(cid) FROM neuron",
		"SELECT cid FROM neuron WHERE neuron_type = 'it''s \\' -- not a comment'",
		"SELECT CASE WHEN voxel_volume > 1 THEN 'a' ELSE 'b' END AS k FROM neuron",
	} {
		p, err := Parse(sql, testCatalog, 1000)
		require.NoError(t, err, sql)
		out, err := p.Compile(targets)
		require.NoError(t, err, sql)
		requireSafe(t, out)
	}
}

// requireSafe asserts the invariant of a compiled statement, read as
// ClickHouse reads it: its table functions are exactly the compiler's
// remote() calls, every function is allowlisted, and no SETTINGS, FORMAT or
// system table appears outside string literals.
func requireSafe(t testing.TB, out string) {
	t.Helper()
	toks, err := chTokens(out)
	require.NoError(t, err, out)
	remotes := 0
	for i, tk := range toks {
		if tk.kind != tokWord && tk.kind != tokQuoted {
			continue
		}
		low := strings.ToLower(tk.text)
		require.NotContains(t, []string{"settings", "format", "system", "into", "join"}, low, out)
		if i+1 < len(toks) && toks[i+1].text == "(" && toks[i+1].kind == tokPunct {
			if low == "remote" {
				remotes++
				require.Equal(t, tokWord, tk.kind)
				continue
			}
			if tk.kind == tokWord && notFunctions[low] {
				continue
			}
			require.True(t, allowedFunctions[low], "function %s in %s", tk.text, out)
		}
	}
	require.Equal(t, len(targets), remotes, out)
	for _, tg := range targets {
		require.Contains(t, out, "remote("+quote(tg.Addr)+", "+quote(tg.Database)+", ")
	}
}

// TestCompiledCheckCatchesTheTrick: were a name like the trick's to pass
// Parse, the check of the printed statement, read as ClickHouse reads it,
// still refuses it: the federated table ends up inside a comment, and the
// remote() and system table are the user's.
func TestCompiledCheckCatchesTheTrick(t *testing.T) {
	t.Parallel()
	stmt, err := sqlparser.Parse(injection)
	require.NoError(t, err)
	sel := stmt.(*sqlparser.Select)
	sel.From[0].(*sqlparser.AliasedTableExpr).Expr = sqlparser.TableName{Name: sqlparser.NewTableIdent(placeholder)}
	body := sqlparser.String(sel)
	require.Contains(t, body, "`x\\`", "sqlparser prints the backslash unchanged")
	require.Error(t, checkBody(body))

	// A compiled statement with a remote() the compiler did not write.
	p, err := Parse("SELECT cid FROM neuron", testCatalog, 10)
	require.NoError(t, err)
	out, err := p.Compile(targets)
	require.NoError(t, err)
	require.NoError(t, checkCompiled(out, "neuron", targets))
	extra := strings.Replace(out, " limit 10", " UNION ALL SELECT * FROM remote('127.0.0.1:9004', 'system', 'databases') limit 10", 1)
	require.Error(t, checkCompiled(extra, "neuron", targets))
	moved := strings.Replace(out, "'127.0.0.1:9003'", "'127.0.0.1:9004'", 1)
	require.Error(t, checkCompiled(moved, "neuron", targets))
}
