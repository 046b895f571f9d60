package routing_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/routing"
)

// node builds a routable node at schema version 3 with unknown latency.
func node(name string, opts ...func(*routing.Node)) routing.Node {
	n := routing.Node{Name: name, Health: health.Healthy, SchemaVersion: 3}
	for _, o := range opts {
		o(&n)
	}
	return n
}

func state(s health.State) func(*routing.Node) {
	return func(n *routing.Node) { n.Health = s }
}

func schema(v int) func(*routing.Node) {
	return func(n *routing.Node) { n.SchemaVersion = v }
}

func latency(d time.Duration) func(*routing.Node) {
	return func(n *routing.Node) { n.Latency = d }
}

func bench(d time.Duration) func(*routing.Node) {
	return func(n *routing.Node) { n.Benchmark = d }
}

func revoked(n *routing.Node) { n.Revoked = true }

func drift(n *routing.Node) { n.Drift = true }

func TestRoute(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name     string
		nodes    []routing.Node
		need     routing.Need
		included []string
		excluded []domain.Exclusion
	}{
		{
			name: "no nodes",
		},
		{
			name:     "healthy is included",
			nodes:    []routing.Node{node("a")},
			included: []string{"a"},
		},
		{
			name:     "degraded is included after every healthy node, even a slower one",
			nodes:    []routing.Node{node("a", state(health.Degraded), latency(1*ms)), node("b", latency(90*ms)), node("c")},
			included: []string{"b", "c", "a"},
		},
		{
			name: "within a class by latency ascending, unknown latency last, ties by name",
			nodes: []routing.Node{
				node("d"), node("c", latency(20*ms)), node("b", latency(10*ms)),
				node("a", latency(20*ms)), node("e", latency(-ms)), node("z", latency(5*ms), state(health.Degraded)),
				node("y", state(health.Degraded)), node("x", latency(7*ms), state(health.Degraded)),
			},
			included: []string{"b", "a", "c", "d", "e", "z", "x", "y"},
		},
		{
			name: "within a class by benchmark figure, faster first, whatever the ping latency",
			nodes: []routing.Node{
				node("a", latency(1*ms), bench(40*ms)), node("b", latency(30*ms), bench(3*ms)), node("c", latency(2*ms), bench(9*ms)),
			},
			included: []string{"b", "c", "a"},
		},
		{
			name: "nodes without a figure after those with one, among themselves by latency",
			nodes: []routing.Node{
				node("a", latency(1*ms)), node("b", latency(50*ms), bench(80*ms)), node("c", latency(2*ms), bench(-ms)), node("d"),
			},
			included: []string{"b", "a", "c", "d"},
		},
		{
			name:     "equal figures fall back to latency, then name",
			nodes:    []routing.Node{node("c", bench(5*ms)), node("a", bench(5*ms), latency(9*ms)), node("b", bench(5*ms), latency(3*ms))},
			included: []string{"b", "a", "c"},
		},
		{
			name: "the state order holds: a fast Degraded node after a slow Healthy one and one without a figure",
			nodes: []routing.Node{
				node("fast", state(health.Degraded), bench(1*ms), latency(1*ms)), node("slow", bench(900*ms), latency(800*ms)),
				node("unmeasured"), node("mid", state(health.Degraded), bench(20*ms)), node("never", state(health.Degraded)),
			},
			included: []string{"slow", "unmeasured", "fast", "mid", "never"},
		},
		{
			name:     "a figure does not bring back an excluded node",
			nodes:    []routing.Node{node("a", state(health.Unreachable), bench(1*ms)), node("b", bench(70*ms))},
			included: []string{"b"},
			excluded: []domain.Exclusion{{Name: "a", Reason: domain.ReasonUnreachable, Detail: "node failed consecutive pings"}},
		},
		{
			name:     "unreachable is excluded",
			nodes:    []routing.Node{node("a", state(health.Unreachable))},
			excluded: []domain.Exclusion{{Name: "a", Reason: domain.ReasonUnreachable, Detail: "node failed consecutive pings"}},
		},
		{
			name:     "unknown is excluded",
			nodes:    []routing.Node{node("a", state(health.Unknown))},
			excluded: []domain.Exclusion{{Name: "a", Reason: domain.ReasonUnknown, Detail: "node has not been checked yet"}},
		},
		{
			name:  "an invalid health state is treated as unknown",
			nodes: []routing.Node{node("a", state("")), node("b", state("HEALTHY"))},
			excluded: []domain.Exclusion{
				{Name: "a", Reason: domain.ReasonUnknown, Detail: `health "" is not a valid state`},
				{Name: "b", Reason: domain.ReasonUnknown, Detail: `health "HEALTHY" is not a valid state`},
			},
		},
		{
			name:     "revoked is excluded",
			nodes:    []routing.Node{node("a", revoked)},
			excluded: []domain.Exclusion{{Name: "a", Reason: domain.ReasonRevoked, Detail: "node is revoked"}},
		},
		{
			name:     "drift is excluded",
			nodes:    []routing.Node{node("a", drift)},
			excluded: []domain.Exclusion{{Name: "a", Reason: domain.ReasonDrift, Detail: "schema ledger disagrees with the hub's migrations"}},
		},
		{
			name:     "schema behind is excluded, the minimum itself is included",
			nodes:    []routing.Node{node("a", schema(2)), node("b", schema(3))},
			need:     routing.Need{MinSchema: 3},
			included: []string{"b"},
			excluded: []domain.Exclusion{{Name: "a", Reason: domain.ReasonSchemaBehind, Detail: "schema version 2 < required 3"}},
		},
		{
			name:     "schema ahead is excluded, the maximum itself is included",
			nodes:    []routing.Node{node("a", schema(5)), node("b", schema(4))},
			need:     routing.Need{MinSchema: 3, MaxSchema: 4},
			included: []string{"b"},
			excluded: []domain.Exclusion{{Name: "a", Reason: domain.ReasonSchemaAhead, Detail: "schema version 5 > maximum 4"}},
		},
		{
			name:     "max schema 0 means no upper bound",
			nodes:    []routing.Node{node("a", schema(99))},
			need:     routing.Need{MinSchema: 3},
			included: []string{"a"},
		},
		{
			name:     "min == max accepts exactly that version",
			nodes:    []routing.Node{node("a", schema(2)), node("b", schema(3)), node("c", schema(4))},
			need:     routing.Need{MinSchema: 3, MaxSchema: 3},
			included: []string{"b"},
			excluded: []domain.Exclusion{
				{Name: "a", Reason: domain.ReasonSchemaBehind, Detail: "schema version 2 < required 3"},
				{Name: "c", Reason: domain.ReasonSchemaAhead, Detail: "schema version 4 > maximum 3"},
			},
		},
		{
			name: "revoked wins over every other reason",
			nodes: []routing.Node{
				node("a", revoked, state(health.Unreachable), drift, schema(1)),
			},
			need:     routing.Need{MinSchema: 3},
			excluded: []domain.Exclusion{{Name: "a", Reason: domain.ReasonRevoked, Detail: "node is revoked"}},
		},
		{
			name: "health wins over drift and schema",
			nodes: []routing.Node{
				node("a", state(health.Unreachable), drift, schema(1)),
				node("b", state(health.Unknown), schema(0)),
			},
			need: routing.Need{MinSchema: 3},
			excluded: []domain.Exclusion{
				{Name: "a", Reason: domain.ReasonUnreachable, Detail: "node failed consecutive pings"},
				{Name: "b", Reason: domain.ReasonUnknown, Detail: "node has not been checked yet"},
			},
		},
		{
			name:     "drift wins over schema",
			nodes:    []routing.Node{node("a", drift, schema(1))},
			need:     routing.Need{MinSchema: 3},
			excluded: []domain.Exclusion{{Name: "a", Reason: domain.ReasonDrift, Detail: "schema ledger disagrees with the hub's migrations"}},
		},
		{
			name: "exclusions are ordered by name",
			nodes: []routing.Node{
				node("d", revoked), node("b", drift), node("c", state(health.Unknown)), node("a", schema(1)),
			},
			need: routing.Need{MinSchema: 3},
			excluded: []domain.Exclusion{
				{Name: "a", Reason: domain.ReasonSchemaBehind, Detail: "schema version 1 < required 3"},
				{Name: "b", Reason: domain.ReasonDrift, Detail: "schema ledger disagrees with the hub's migrations"},
				{Name: "c", Reason: domain.ReasonUnknown, Detail: "node has not been checked yet"},
				{Name: "d", Reason: domain.ReasonRevoked, Detail: "node is revoked"},
			},
		},
		{
			name:     "requested nodes only; the others are omitted, not excluded",
			nodes:    []routing.Node{node("a"), node("b"), node("c", revoked)},
			need:     routing.Need{Nodes: []string{"b"}},
			included: []string{"b"},
		},
		{
			name:     "a requested node is still subject to the rules",
			nodes:    []routing.Node{node("a"), node("b", state(health.Unreachable))},
			need:     routing.Need{Nodes: []string{"b", "a"}},
			included: []string{"a"},
			excluded: []domain.Exclusion{{Name: "b", Reason: domain.ReasonUnreachable, Detail: "node failed consecutive pings"}},
		},
		{
			name:     "a requested name that is not registered is excluded once",
			nodes:    []routing.Node{node("a")},
			need:     routing.Need{Nodes: []string{"zz", "a", "zz", "m"}},
			included: []string{"a"},
			excluded: []domain.Exclusion{
				{Name: "m", Reason: domain.ReasonNotRegistered, Detail: "no registered node has this name"},
				{Name: "zz", Reason: domain.ReasonNotRegistered, Detail: "no registered node has this name"},
			},
		},
		{
			name:     "requesting from an empty registry",
			need:     routing.Need{Nodes: []string{"a"}},
			excluded: []domain.Exclusion{{Name: "a", Reason: domain.ReasonNotRegistered, Detail: "no registered node has this name"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			input := slices.Clone(tt.nodes)
			plan := routing.Route(tt.nodes, tt.need)
			require.Equal(t, tt.included, plan.Names())
			require.Equal(t, tt.excluded, plan.Excluded)
			require.Equal(t, input, tt.nodes, "Route must not modify its input")
		})
	}
}

func TestRouteIncludesWholeNodes(t *testing.T) {
	t.Parallel()
	n := routing.Node{Name: "a", Health: health.Degraded, SchemaVersion: 7, Latency: 3 * time.Millisecond}
	plan := routing.Route([]routing.Node{n}, routing.Need{MinSchema: 7})
	require.Equal(t, []routing.Node{n}, plan.Included)
	require.Empty(t, plan.Excluded)
}

func TestRouteIgnoresInputOrder(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	nodes := []routing.Node{
		node("h1", latency(30*ms)), node("h2", latency(10*ms)), node("h3"), node("h4", latency(10*ms)),
		node("b1", bench(4*ms)), node("b2", bench(4*ms), latency(2*ms)), node("b3", bench(1*ms), state(health.Degraded)),
		node("d1", state(health.Degraded), latency(5*ms)), node("d2", state(health.Degraded)),
		node("u1", state(health.Unreachable)), node("k1", state(health.Unknown)),
		node("r1", revoked), node("x1", drift), node("old", schema(1)), node("new", schema(9)),
	}
	tests := []struct {
		name string
		need routing.Need
	}{
		{name: "all nodes", need: routing.Need{MinSchema: 2, MaxSchema: 5}},
		{name: "some nodes", need: routing.Need{MinSchema: 2, Nodes: []string{"ghost", "h3", "d2", "old", "h1", "nobody", "r1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := routing.Route(nodes, tt.need)
			require.NotEmpty(t, want.Included)
			require.NotEmpty(t, want.Excluded)
			rng := rand.New(rand.NewPCG(1, 2))
			for range 200 {
				shuffled := slices.Clone(nodes)
				rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				need := tt.need
				need.Nodes = slices.Clone(tt.need.Nodes)
				rng.Shuffle(len(need.Nodes), func(i, j int) { need.Nodes[i], need.Nodes[j] = need.Nodes[j], need.Nodes[i] })
				require.Equal(t, want, routing.Route(shuffled, need))
			}
		})
	}
}

func TestPlanNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		plan routing.Plan
		want []string
	}{
		{name: "empty plan", plan: routing.Plan{}, want: nil},
		{
			name: "names in plan order, exclusions ignored",
			plan: routing.Plan{
				Included: []routing.Node{{Name: "b"}, {Name: "a"}},
				Excluded: []domain.Exclusion{{Name: "c", Reason: domain.ReasonRevoked}},
			},
			want: []string{"b", "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.plan.Names())
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		need    routing.Need
		wantErr string
	}{
		{name: "zero need", need: routing.Need{}},
		{name: "min only", need: routing.Need{MinSchema: 3}},
		{name: "min and max", need: routing.Need{MinSchema: 3, MaxSchema: 5}},
		{name: "min equals max", need: routing.Need{MinSchema: 3, MaxSchema: 3}},
		{name: "max only", need: routing.Need{MaxSchema: 2}},
		{name: "negative min", need: routing.Need{MinSchema: -1}, wantErr: "min schema -1 is negative"},
		{name: "negative max", need: routing.Need{MaxSchema: -1}, wantErr: "max schema -1 is negative"},
		{name: "max below min", need: routing.Need{MinSchema: 4, MaxSchema: 3}, wantErr: "max schema 3 < min schema 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := routing.Validate(tt.need)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, routing.ErrInvalidNeed)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
