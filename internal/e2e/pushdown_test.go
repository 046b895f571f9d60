package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// pushdownRows is how many neuron rows each pushdown node holds.
const pushdownRows = 2_000_000

// pushdownLimit bounds a node's bytes to the hub for an aggregate whose
// work is pushed down: O(groups), not O(rows).
const pushdownLimit = 256 << 10

// pushdownLoad fills a pushdown node with pushdownRows neuron rows in four
// datasets (dataset ids ending in base..base+3).
func pushdownLoad(base int) string {
	return fmt.Sprintf(`INSERT INTO neuron (dataset_id, cid, voxel_volume, neuron_type, terminal_count)
		SELECT toUUID(concat('00000000-0000-4000-8000-0000000000', toString(%d + number %% 4))), generateUUIDv4(),
			toFloat64(intHash32(number) %% 100000) / 10000, ['pyramidal', 'interneuron', 'granule'][number %% 3 + 1],
			toUInt32(number %% 200)
		FROM numbers(%d)`, base, pushdownRows)
}

// pushFleet is the pushdown test's nodes.
type pushFleet []*pushNode

func (f pushFleet) names() []string {
	out := make([]string, len(f))
	for i, n := range f {
		out[i] = n.name
	}
	return out
}

// union is the union of each node's answer to direct, from its own
// ClickHouse: their dataset ids are disjoint, so a fleet's group is one
// node's.
func (f pushFleet) union(t *testing.T, direct string) [][]any {
	t.Helper()
	var out [][]any
	for _, n := range f {
		out = append(out, chRows(t, n.conn, direct)...)
	}
	return out
}

// ask runs sql over the nodes, checks the answer against want and returns
// the bytes each node sent the hub meanwhile.
func (f pushFleet) ask(t *testing.T, sql string, want [][]any, m match) []int64 {
	t.Helper()
	before := make([]int64, len(f))
	for i, n := range f {
		before[i] = n.proxy.down.Load()
	}
	ans := fedQuery(t, sql, f.names())
	sent := make([]int64, len(f))
	for i, n := range f {
		sent[i] = n.proxy.down.Load() - before[i]
		t.Logf("%s sent the hub %d bytes for %s", n.name, sent[i], sql)
	}
	require.Equal(t, http.StatusOK, ans.status, "%s\nrefused: %s", sql, ans.err)
	require.Empty(t, ans.meta.Error)
	require.ElementsMatch(t, f.names(), ans.meta.Included)
	requireRows(t, m, want, ans.rows, sql)
	return sent
}

// requirePushedDown asserts each node sent the hub O(groups) bytes.
func (f pushFleet) requirePushedDown(t *testing.T, sent []int64) {
	t.Helper()
	for i, s := range sent {
		require.Less(t, s, int64(pushdownLimit), "%s sent the hub O(groups) bytes, not its rows", f[i].name)
	}
}

// TestFedSQLPushdown runs aggregates over two nodes of 2,000,000 neurons
// each, whose warehouses the hub's ClickHouse reaches through byte-counting
// proxies, and checks the answers against each node's ClickHouse and the
// bytes each node sent the hub. The harness subtests hold with a compiler
// that ships rows; the pushed_down ones need aggregates computed per node.
func TestFedSQLPushdown(t *testing.T) {
	f := pushFleet{startPushNode(t, "push-a", pushdownLoad(10)), startPushNode(t, "push-b", pushdownLoad(20))}
	t.Run("harness_count_by_dataset", func(t *testing.T) {
		sql := "SELECT dataset_id, count() AS n FROM neuron GROUP BY dataset_id"
		for i, sent := range f.ask(t, sql, f.union(t, sql), match{}) {
			require.Positive(t, sent, "the hub read %s through its proxy", f[i].name)
		}
	})
	t.Run("harness_rows_shipped_are_counted", func(t *testing.T) {
		n := f[0]
		want := chRows(t, n.conn, "SELECT count() FROM neuron WHERE terminal_count < 5")
		before := n.proxy.down.Load()
		ans := fedQuery(t, "SELECT cid, voxel_volume FROM neuron WHERE terminal_count < 5", []string{n.name})
		sent := n.proxy.down.Load() - before
		t.Logf("%s sent the hub %d bytes for %d rows", n.name, sent, len(ans.rows))
		require.Equal(t, http.StatusOK, ans.status, ans.err)
		require.InDelta(t, want[0][0], float64(len(ans.rows)), 0)
		require.Greater(t, sent, int64(pushdownLimit), "rows shipped to the hub show in the proxy's count")
	})
	t.Run("avg_pushed_down", func(t *testing.T) {
		sql := "SELECT dataset_id, count(), avg(voxel_volume) FROM neuron GROUP BY dataset_id"
		f.requirePushedDown(t, f.ask(t, sql, f.union(t, sql), match{}))
	})
	t.Run("quantile_pushed_down", func(t *testing.T) {
		// quantile samples: its answer is within 2% of the exact quantile.
		want := f.union(t, "SELECT dataset_id, count(), avg(voxel_volume), quantileExact(0.9)(voxel_volume) FROM neuron GROUP BY dataset_id")
		f.requirePushedDown(t, f.ask(t,
			"SELECT dataset_id, count(), avg(voxel_volume), quantile(0.9)(voxel_volume) FROM neuron GROUP BY dataset_id",
			want, match{colTol: map[int]float64{3: 0.02}}))
	})
	t.Run("count_bytes_logged", func(t *testing.T) {
		var total float64
		for _, r := range f.union(t, "SELECT count() FROM neuron") {
			total += r[0].(float64)
		}
		require.InDelta(t, float64(len(f)*pushdownRows), total, 0)
		f.ask(t, "SELECT count() AS n FROM neuron", [][]any{{total}}, match{})
	})
}
