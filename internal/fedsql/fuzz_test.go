package fedsql

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// FuzzCompile: whatever the text, an accepted query compiles, and what it
// compiles to, read as ClickHouse reads it, holds the compiler's remote()
// calls and nothing the allowlist does not name. A text Parse accepts that
// Plan's own check then refuses is a hole in the first line of defence,
// and fails too.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		injection,
		"SELECT cid, voxel_volume FROM neuron WHERE voxel_volume > 1.5",
		"SELECT _node, count() AS n FROM neuron GROUP BY _node ORDER BY n DESC",
		"SELECT dataset_id, count(), avg(voxel_volume), quantile(0.9)(voxel_volume) FROM neuron GROUP BY dataset_id",
		"SELECT n.cid, count() AS c FROM synapse AS s JOIN neuron AS n ON s.pre_id = n.cid GROUP BY n.cid ORDER BY c DESC LIMIT 10",
		"SELECT count() FROM vesicle WHERE parent_id IN (SELECT cid FROM pre_synapse)",
		"WITH 0.5 AS t SELECT countIf(voxel_volume > t) FROM neuron",
		"SELECT arrayMap(x -> x * 2, [voxel_volume]) FROM neuron",
		"SELECT cid FROM neuron UNION ALL SELECT cid FROM synapse",
		"SELECT a FROM neuron ARRAY JOIN [1, 2] AS a PREWHERE cid IS NOT NULL LIMIT 3 BY a",
		"SELECT avg(c) FROM (SELECT pre_id, count() AS c FROM synapse GROUP BY pre_id)",
		"SELECT cid FROM neuron WHERE neuron_type = 'a''b' SETTINGS max_threads = 2",
		"SELECT `a b` FROM (SELECT cid AS `a b` FROM neuron)",
		nestedCase(3),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		// A parse that does not return is a failure with its input, not a
		// hung fuzzer.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				panic(fmt.Sprintf("Parse did not return within 5 s on %q", sql))
			}
		}()
		for _, scope := range []Scope{ScopeNode, ScopeFleet} {
			p, err := Parse(sql, testCatalog, Options{MaxRows: 1000, MaxSeconds: 60, Scope: scope})
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Parse(%q): %v is not an ErrInvalid", sql, err)
				}
				return
			}
			plan, err := p.Plan(targets)
			if err != nil {
				t.Fatalf("Parse accepted %q but Plan refused it: %v", sql, err)
			}
			requireSafe(t, plan)
		}
	})
}
