// Package schemastatus reports where every warehouse of the federation stands
// against the hub's migrations: the hub's own, and each node's as last
// reported to the registry. The API and `syndb schema status` share it.
package schemastatus

import (
	"context"
	"errors"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/migrate"
)

// Node states.
const (
	StateSynced = "synced" // at the hub's newest migration
	StateBehind = "behind" // below it: a sync has work
	StateDrift  = "drift"  // its ledger disagrees with the hub's files; sync leaves it alone
)

// Status is the federation's schema at a glance.
type Status struct {
	// Head is the newest migration the hub knows.
	Head int `json:"head"`
	// Target is the version the latest sync asked the fleet to reach (0
	// before any sync).
	Target int         `json:"target"`
	Hub    Warehouse   `json:"hub"`
	Nodes  []Node      `json:"nodes"`
	Counts StateCounts `json:"counts"`
}

// Warehouse is the hub warehouse's schema.
type Warehouse struct {
	Version int           `json:"version"`
	Pending []int         `json:"pending"`
	Drift   *domain.Drift `json:"drift,omitempty"`
}

// Node is one node's schema, as last reported.
type Node struct {
	Name    string        `json:"name"`
	Version int           `json:"version"`
	State   string        `json:"state"`
	Pending []int         `json:"pending"`
	Drift   *domain.Drift `json:"drift,omitempty"`
	Health  string        `json:"health"`
	// LastSeen is when the node last answered (zero when never).
	LastSeen time.Time `json:"last_seen"`
}

// StateCounts counts nodes by state.
type StateCounts struct {
	Synced int `json:"synced"`
	Behind int `json:"behind"`
	Drift  int `json:"drift"`
}

// Registry is what Read needs of the hub's store.
type Registry interface {
	Clusters(ctx context.Context, activeOnly bool) ([]domain.Cluster, error)
	SchemaTarget(ctx context.Context) (int, error)
}

// Read gathers the status: the hub warehouse's ledger against migs, and
// every active node's reported version and drift against them.
func Read(ctx context.Context, reg Registry, warehouse driver.Conn, migs []migrate.Migration) (Status, error) {
	st := Status{Head: len(migs), Nodes: []Node{}}
	var err error
	if st.Target, err = reg.SchemaTarget(ctx); err != nil {
		return st, err
	}
	ledger, err := migrate.Ledger(ctx, warehouse)
	if err != nil {
		return st, err
	}
	st.Hub.Version = len(ledger)
	st.Hub.Pending = pending(len(ledger), len(migs))
	var drift *migrate.DriftError
	if errors.As(migrate.CheckDrift(ledger, migs), &drift) {
		st.Hub.Drift = &domain.Drift{Version: drift.Version, Reason: drift.Reason}
	}
	clusters, err := reg.Clusters(ctx, true)
	if err != nil {
		return st, err
	}
	for _, c := range clusters {
		n := Node{Name: c.Name, Version: c.SchemaVersion, Drift: c.Drift, Health: c.Health, LastSeen: c.LastSeen,
			Pending: pending(c.SchemaVersion, st.Head)}
		switch {
		case c.Drift != nil:
			n.State = StateDrift
			st.Counts.Drift++
		case c.SchemaVersion < st.Head:
			n.State = StateBehind
			st.Counts.Behind++
		default:
			n.State = StateSynced
			st.Counts.Synced++
		}
		st.Nodes = append(st.Nodes, n)
	}
	return st, nil
}

// pending lists the versions from+1..to.
func pending(from, to int) []int {
	out := []int{}
	for v := from + 1; v <= to; v++ {
		out = append(out, v)
	}
	return out
}
