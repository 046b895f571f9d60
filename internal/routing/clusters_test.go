package routing

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
)

func TestFromClusters(t *testing.T) {
	t.Parallel()
	nodes := FromClusters([]domain.Cluster{
		{Name: "a", Health: "healthy", SchemaVersion: 4, Status: "active", HealthLatencyMS: 2.5, BenchmarkMS: 7.25},
		{Name: "b", Health: "degraded", SchemaVersion: 4, Status: "active", Drift: &domain.Drift{Version: 2}},
		{Name: "c", Health: "bogus", Status: "revoked"},
	})
	require.Equal(t, []Node{
		{Name: "a", Health: health.Healthy, SchemaVersion: 4, Latency: 2500 * time.Microsecond, Benchmark: 7250 * time.Microsecond},
		{Name: "b", Health: health.Degraded, SchemaVersion: 4, Drift: true},
		{Name: "c", Health: health.Unknown, Revoked: true},
	}, nodes)
	p := Route(nodes, Need{MinSchema: 4})
	require.Equal(t, []string{"a"}, p.Names())
	require.Len(t, p.Excluded, 2)
}
