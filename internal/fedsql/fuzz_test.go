package fedsql

import (
	"errors"
	"strings"
	"testing"
)

// FuzzCompile: whatever the text, an accepted query compiles, and what it
// compiles to, read as ClickHouse reads it, holds the compiler's remote()
// calls and nothing the allowlist does not name. A text Parse accepts that
// Compile's own check then refuses is a hole in the first line of defence,
// and fails too.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		injection,
		"SELECT count() AS `x\\`, 1 AS ` , groupArray(name) FROM remote('127.0.0.1:9004', system.processes) -- ` FROM neuron",
		"SELECT count() AS `x\\`, 1 AS ` , 1 FROM neuron SETTINGS max_execution_time=0 -- ` FROM neuron",
		"SELECT cid AS \"a\\\", 1 AS \" FROM neuron",
		"SELECT cid FROM neuron WHERE neuron_type = 'a\\' OR 1=1 -- '",
		"SELECT voxel_volume = ? FROM neuron",
		"SELECT cid, voxel_volume FROM neuron WHERE voxel_volume > 1.5",
		"SELECT _node, count() AS n FROM neuron GROUP BY _node ORDER BY n DESC",
		"SELECT m.cid FROM mitochondria AS m LIMIT 10",
		"SELECT - -voxel_volume FROM neuron",
		"SELECT cid FROM neuron /* c */ WHERE cid = 1",
		"SELECT /*! 1 */ cid FROM neuron",
		"SELECT cid FROM neuron WHERE cid > interval 1 day",
		"SELECT `a``b` FROM neuron",
		"SELECT uniq(cid) AS `x y`, quantile(0.5)(voxel_volume) FROM neuron",
		nestedCase(3),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		p, err := Parse(sql, testCatalog, 1000)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q): %v is not an ErrInvalid", sql, err)
			}
			return
		}
		out, err := p.Compile(targets)
		if err != nil {
			t.Fatalf("Parse accepted %q but Compile refused it: %v", sql, err)
		}
		if strings.Contains(out, placeholder) {
			t.Fatalf("placeholder left in %q", out)
		}
		requireSafe(t, out)
	})
}
