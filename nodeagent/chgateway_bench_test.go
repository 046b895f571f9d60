package nodeagent

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkCHGateway runs a small aggregate on the hub's ClickHouse over
// one node's rows, by remote() through the gateway (libp2p to the node
// agent, then its ClickHouse) and, in turn, by remote() straight to the
// node's ClickHouse, 100 times each a loop in turns (so both see the same
// load), and reports each one's median.
func BenchmarkCHGateway(b *testing.B) {
	f := startGatewayFixture(b, "lab-gb")
	routes := []struct{ name, from string }{
		{"gateway", fmt.Sprintf("remote('%s', 'syndb', 'gw_t', 'lab-gb', '')", f.gw.Addr())},
		{"direct", fmt.Sprintf("remote('%s', 'syndb', 'gw_t', 'default', '')", f.proxy.ln.Addr())},
	}
	times := make([][]time.Duration, len(routes))
	for b.Loop() {
		for range 100 {
			for i, r := range routes {
				start := time.Now()
				var n uint64
				require.NoError(b, f.hub.QueryRow(b.Context(), "SELECT count() FROM "+r.from).Scan(&n))
				times[i] = append(times[i], time.Since(start))
				require.Equal(b, uint64(5000), n)
			}
		}
	}
	for i, r := range routes {
		slices.Sort(times[i])
		b.ReportMetric(float64(times[i][len(times[i])/2].Microseconds())/1000, r.name+"-median-ms")
	}
}
