package fedsql

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
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
