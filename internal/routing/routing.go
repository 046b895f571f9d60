// Package routing decides which nodes a query or job may be sent to.
//
// It applies the routing rules of the README's "Health and circuit breaking" and "Schema versioning" sections
// to a list of registered nodes: Healthy nodes are included, Degraded ones
// too at lower priority; Unreachable and Unknown nodes are excluded, as are
// revoked nodes, nodes whose schema ledger has drifted, and nodes whose schema
// version the query cannot use. Within a health state, nodes with a recent
// benchmark figure come first, fastest first (see "Node benchmarks" in the
// README). The package is pure: no I/O, no clock, and the same input in any
// order gives the same Plan.
package routing

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
)

// Node is what routing needs to know of one registered node. Names are the
// registry's key and are expected to be unique.
type Node struct {
	Name          string
	Health        health.State
	SchemaVersion int
	// Drift is set when the node's migration ledger disagrees with the hub's
	// migrations.
	Drift   bool
	Revoked bool
	// Latency is the last measured round trip; zero (or negative) when unknown.
	Latency time.Duration
	// Benchmark is the node's recent benchmark figure (the median latency
	// of its latest standard aggregates over the data plane); zero (or
	// negative) when it has none.
	Benchmark time.Duration
}

// Need is what a query or job requires of a node. Check it with Validate
// before routing.
type Need struct {
	// MinSchema is the lowest schema version the query can use.
	MinSchema int
	// MaxSchema is the highest schema version the query can use; 0 means no
	// upper bound.
	MaxSchema int
	// Nodes restricts routing to these names; empty means all nodes. Nodes
	// not named are omitted from the Plan; names that are not registered are
	// excluded with ReasonNotRegistered.
	Nodes []string
}

// Plan is a routing decision. Included is in priority order: Healthy nodes
// before Degraded ones; within each class, nodes with a Benchmark figure
// first, by it ascending, then those without; then by Latency ascending
// with unknown latency last; ties by name. Excluded is ordered by name.
type Plan struct {
	Included []Node
	Excluded []domain.Exclusion
}

// ErrInvalidNeed is wrapped by the errors Validate returns.
var ErrInvalidNeed = errors.New("invalid routing need")

// Validate checks that need's schema bounds make sense: no negative versions,
// and MaxSchema, when set, not below MinSchema.
func Validate(need Need) error {
	switch {
	case need.MinSchema < 0:
		return fmt.Errorf("%w: min schema %d is negative", ErrInvalidNeed, need.MinSchema)
	case need.MaxSchema < 0:
		return fmt.Errorf("%w: max schema %d is negative", ErrInvalidNeed, need.MaxSchema)
	case need.MaxSchema != 0 && need.MaxSchema < need.MinSchema:
		return fmt.Errorf("%w: max schema %d < min schema %d", ErrInvalidNeed, need.MaxSchema, need.MinSchema)
	}
	return nil
}

// Route decides which of nodes may serve need. It does not modify nodes, and
// its result does not depend on their order. need is assumed valid (see
// Validate).
func Route(nodes []Node, need Need) Plan {
	var requested map[string]bool
	if len(need.Nodes) > 0 {
		requested = make(map[string]bool, len(need.Nodes))
		for _, name := range need.Nodes {
			requested[name] = true
		}
	}

	var plan Plan
	registered := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		registered[n.Name] = true
		if requested != nil && !requested[n.Name] {
			continue
		}
		if ex, ok := exclude(n, need); ok {
			plan.Excluded = append(plan.Excluded, ex)
			continue
		}
		plan.Included = append(plan.Included, n)
	}
	for _, name := range need.Nodes {
		if !registered[name] {
			registered[name] = true // report each missing name once
			plan.Excluded = append(plan.Excluded, domain.Exclusion{
				Name:   name,
				Reason: domain.ReasonNotRegistered,
				Detail: "no registered node has this name",
			})
		}
	}

	slices.SortFunc(plan.Included, compareIncluded)
	slices.SortFunc(plan.Excluded, func(a, b domain.Exclusion) int {
		return cmp.Or(
			cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Reason, b.Reason),
			cmp.Compare(a.Detail, b.Detail),
		)
	})
	return plan
}

// Names returns the names of the included nodes, in priority order.
func (p Plan) Names() []string {
	var names []string
	for _, n := range p.Included {
		names = append(names, n.Name)
	}
	return names
}

// exclude reports whether n must be left out for need, and why.
func exclude(n Node, need Need) (domain.Exclusion, bool) {
	ex := domain.Exclusion{Name: n.Name}
	switch {
	case n.Revoked:
		ex.Reason, ex.Detail = domain.ReasonRevoked, "node is revoked"
	case n.Health == health.Unreachable:
		ex.Reason, ex.Detail = domain.ReasonUnreachable, "node failed consecutive pings"
	case !n.Health.Valid():
		ex.Reason, ex.Detail = domain.ReasonUnknown, fmt.Sprintf("health %q is not a valid state", n.Health)
	case !n.Health.Routable():
		ex.Reason, ex.Detail = domain.ReasonUnknown, "node has not been checked yet"
	case n.Drift:
		ex.Reason, ex.Detail = domain.ReasonDrift, "schema ledger disagrees with the hub's migrations"
	case n.SchemaVersion < need.MinSchema:
		ex.Reason = domain.ReasonSchemaBehind
		ex.Detail = fmt.Sprintf("schema version %d < required %d", n.SchemaVersion, need.MinSchema)
	case need.MaxSchema != 0 && n.SchemaVersion > need.MaxSchema:
		ex.Reason = domain.ReasonSchemaAhead
		ex.Detail = fmt.Sprintf("schema version %d > maximum %d", n.SchemaVersion, need.MaxSchema)
	default:
		return domain.Exclusion{}, false
	}
	return ex, true
}

// compareIncluded orders routable nodes: Healthy before Degraded, then by
// known benchmark figure ascending with none last, then by known latency
// ascending with unknown last, then by name. The schema version breaks the
// tie between duplicate names so the order is total.
func compareIncluded(a, b Node) int {
	return cmp.Or(
		cmp.Compare(priority(a.Health), priority(b.Health)),
		compareLatency(a.Benchmark, b.Benchmark),
		compareLatency(a.Latency, b.Latency),
		cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.SchemaVersion, b.SchemaVersion),
	)
}

// priority ranks a routable state; lower is preferred.
func priority(s health.State) int {
	if s == health.Healthy {
		return 0
	}
	return 1
}

// compareLatency orders known latencies (or benchmark figures) ascending,
// with unknown (<= 0) last.
func compareLatency(a, b time.Duration) int {
	aKnown, bKnown := a > 0, b > 0
	switch {
	case aKnown && bKnown:
		return cmp.Compare(a, b)
	case aKnown:
		return -1
	case bKnown:
		return 1
	}
	return 0
}
