package routing

import (
	"time"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
)

// FromClusters turns registry rows (a registry snapshot's) into routing
// nodes, with their recent benchmark figures. A health state the registry should never hold routes as Unknown.
func FromClusters(cs []domain.Cluster) []Node {
	out := make([]Node, 0, len(cs))
	for _, c := range cs {
		st, err := health.ParseState(c.Health)
		if err != nil {
			st = health.Unknown
		}
		out = append(out, Node{
			Name: c.Name, Health: st, SchemaVersion: c.SchemaVersion, Drift: c.Drift != nil,
			Revoked: c.Status == "revoked", Latency: time.Duration(c.HealthLatencyMS * float64(time.Millisecond)),
			Benchmark: time.Duration(c.BenchmarkMS * float64(time.Millisecond)),
		})
	}
	return out
}
