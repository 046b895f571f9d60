package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/internal/domain"
)

// netnsLink is one end of a topology's link: an interface in a namespace
// ("" is the root namespace).
type netnsLink struct {
	ns  netns
	ifc string
}

// linkBytes reads the bytes the interface of l has received and sent.
func linkBytes(t *testing.T, l netnsLink) uint64 {
	t.Helper()
	args := []string{"-s", "-j", "link", "show", "dev", l.ifc}
	if l.ns.name != "" {
		args = append([]string{"-n", l.ns.name}, args...)
	}
	out, err := exec.CommandContext(t.Context(), "ip", args...).Output()
	require.NoError(t, err, "ip %s", strings.Join(args, " "))
	var links []struct {
		Stats struct {
			Rx, Tx struct {
				Bytes uint64 `json:"bytes"`
			}
		} `json:"stats64"`
	}
	require.NoError(t, json.Unmarshal(out, &links))
	require.Len(t, links, 1)
	return links[0].Stats.Rx.Bytes + links[0].Stats.Tx.Bytes
}

// seedSynapses writes n synapses into l's dataset, each between two of
// its neurons, with a missing pre or post now and then, and returns the
// bytes of the (pre_id, post_id) UUIDs a transfer of them carries.
func seedSynapses(t *testing.T, l *nsLab, n int) uint64 {
	t.Helper()
	ctx := t.Context()
	rows, err := l.conn.Query(ctx, "SELECT cid FROM neuron WHERE dataset_id = toUUID(?) LIMIT 400", l.dataset)
	require.NoError(t, err)
	var pool []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		require.NoError(t, rows.Scan(&id))
		pool = append(pool, id)
	}
	require.NoError(t, rows.Close())
	require.NotEmpty(t, pool)
	batch, err := l.conn.PrepareBatch(ctx, "INSERT INTO synapse (dataset_id, cid, pre_id, post_id)")
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	dataset := uuid.MustParse(l.dataset)
	for i := range n {
		pre, post := &pool[rng.IntN(len(pool))], &pool[rng.IntN(len(pool))]
		switch i % 17 {
		case 3:
			pre = nil
		case 11:
			post = nil
		}
		require.NoError(t, batch.Append(dataset, uuid.New(), pre, post))
	}
	require.NoError(t, batch.Send())
	var pres, posts uint64
	require.NoError(t, l.conn.QueryRow(ctx, "SELECT count(pre_id), count(post_id) FROM synapse").Scan(&pres, &posts))
	return 16 * (pres + posts)
}

// labGraph is the oracle of a synapse graph job over labs: each lab's
// neurons' in and out degrees, counted by its own ClickHouse, and their
// distributions. It also returns how many neurons each lab has.
func labGraph(t *testing.T, labs ...*nsLab) (activities.GraphResult, map[string]int64) {
	t.Helper()
	want := activities.GraphResult{InDegree: map[int64]int64{}, OutDegree: map[int64]int64{}}
	perLab := map[string]int64{}
	for _, l := range labs {
		in, out := map[string]int64{}, map[string]int64{}
		for col, m := range map[string]map[string]int64{"pre_id": out, "post_id": in} {
			rows, err := l.conn.Query(t.Context(), fmt.Sprintf(
				"SELECT toString(%s), count() FROM synapse WHERE %s IS NOT NULL GROUP BY %s", col, col, col))
			require.NoError(t, err)
			for rows.Next() {
				var (
					id string
					c  uint64
				)
				require.NoError(t, rows.Scan(&id, &c))
				m[id] = int64(c)
			}
			require.NoError(t, rows.Close())
		}
		neurons := map[string]bool{}
		for id := range in {
			neurons[id] = true
		}
		for id := range out {
			neurons[id] = true
		}
		for id := range neurons {
			want.InDegree[in[id]]++
			want.OutDegree[out[id]]++
			want.Edges += out[id]
			want.MaxIn, want.MaxOut = max(want.MaxIn, in[id]), max(want.MaxOut, out[id])
		}
		perLab[l.name] = int64(len(neurons))
		want.Neurons += int64(len(neurons))
	}
	return want, perLab
}

// netnsGraph: a synapse graph job over the NAT'd lab, over the direct lab
// and over both equals the graph each lab's own ClickHouse counts, each
// node's part holds its neurons, and each lab's synapses crossed its links
// (the NAT'd lab's the relay's, within the relay's data budget) and no
// other lab's.
func netnsGraph(t *testing.T, top *netnsTopology, relayMaxData uint64) {
	payload := map[string]uint64{top.nat.name: seedSynapses(t, top.nat, 30000), top.direct.name: seedSynapses(t, top.direct, 20000)}
	// The NAT'd lab's synapses cross the relay once in each job over it.
	require.Less(t, 2*payload[top.nat.name], relayMaxData/4, "the relay's budget covers the transfers")
	links := map[string][]netnsLink{
		top.nat.name:    {{top.relayNS, top.ifaces.relayNat}, {netns{}, top.ifaces.hubRelay}},
		top.direct.name: {{netns{}, top.ifaces.hubDirect}},
	}
	for _, tc := range []struct {
		name string
		labs []*nsLab
	}{
		{"nat", []*nsLab{top.nat}},
		{"direct", []*nsLab{top.direct}},
		{"both", []*nsLab{top.nat, top.direct}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := make([]string, len(tc.labs))
			for i, l := range tc.labs {
				names[i] = fmt.Sprintf("%q", l.name)
			}
			before := map[netnsLink]uint64{}
			for _, ks := range links {
				for _, k := range ks {
					before[k] = linkBytes(t, k)
				}
			}
			st := startJob(t, `{"analysis": "synapse_graph", "nodes": [`+strings.Join(names, ",")+`]}`)
			js := waitJob(t, st.JobID, 2*time.Minute)
			require.Equal(t, domain.JobCompleted, js.State, "%s %s", js.Error, js.Nodes)
			var got activities.GraphResult
			require.NoError(t, json.Unmarshal(js.Result, &got))
			want, perLab := labGraph(t, tc.labs...)
			require.Positive(t, want.Edges)
			require.Equal(t, want, got)
			nodes := jobNodes(t, js)
			require.Len(t, nodes, len(tc.labs))
			for _, l := range tc.labs {
				require.Equal(t, domain.JobNodeDone, nodes[l.name].State, "%s", js.Nodes)
				require.Equal(t, perLab[l.name], nodes[l.name].Rows, "the part of %s holds its neurons", l.name)
				for _, k := range links[l.name] {
					crossed := linkBytes(t, k) - before[k]
					t.Logf("%s: %d bytes on %s for %d bytes of synapses", l.name, crossed, k.ifc, payload[l.name])
					require.GreaterOrEqual(t, crossed, payload[l.name], "the synapses of %s crossed %s", l.name, k.ifc)
					delete(before, k)
				}
			}
			// The control: links of labs outside the job carried next to
			// nothing, so the counts above are the job's synapses.
			for k, b := range before {
				require.Less(t, linkBytes(t, k)-b, payload[top.direct.name]/4, "%s carried no synapses", k.ifc)
			}
		})
	}
}
