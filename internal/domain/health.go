package domain

import (
	"time"

	"github.com/syndb/federation/internal/health"
)

// SweepParams is the input of HealthSweep.
type SweepParams struct {
	// Skip names nodes not to ping this time (Unreachable nodes whose next
	// half-open probe is not due).
	Skip []string `json:"skip,omitempty"`
}

// NodePing is one node's ping in a sweep.
type NodePing struct {
	Name string `json:"name"`
	health.Observation
	// ClickHouseLatency is how long the node's own ClickHouse took to answer it.
	ClickHouseLatency time.Duration `json:"clickhouse_latency,omitempty"`
	// Path is the path of the hub's connection to the node after an
	// answered ping: direct, hole-punched or relayed (p2p.Path*).
	Path string `json:"path,omitempty"`
	// Transport is that connection's transport: quic-v1 or tcp.
	Transport string `json:"transport,omitempty"`
	// Recorded is the node's state in the registry when it was pinged.
	// The registry says Unknown while the breaker says otherwise only when
	// the node was enrolled again (or a recorded transition was lost): the
	// monitor then starts its breaker afresh.
	Recorded health.State `json:"recorded,omitempty"`
}

// SweepResult is the output of HealthSweep: one compact result per active
// node that was pinged, by name, and the fleet's schema target.
type SweepResult struct {
	Target  int        `json:"target"`
	Nodes   []NodePing `json:"nodes"`
	Skipped []string   `json:"skipped,omitempty"`
}

// Transition is a node's change of health state, to record.
type Transition struct {
	Node      string       `json:"node"`
	From      health.State `json:"from"`
	To        health.State `json:"to"`
	Reason    string       `json:"reason"`
	LatencyMS float64      `json:"latency_ms"`
	At        time.Time    `json:"at"`
}

// PingSummary is what is kept of a node's latest ping.
type PingSummary struct {
	Node          string  `json:"node"`
	Answered      bool    `json:"answered"`
	LatencyMS     float64 `json:"latency_ms"`
	SchemaVersion int     `json:"schema_version"`
	// Path is the connection's path when the node answered (NodePing.Path).
	Path string `json:"path,omitempty"`
	// Transport is the connection's transport then (NodePing.Transport).
	Transport string `json:"transport,omitempty"`
}

// RecordHealthParams is the input of RecordHealth.
type RecordHealthParams struct {
	Transitions []Transition  `json:"transitions,omitempty"`
	Pings       []PingSummary `json:"pings,omitempty"`
	// Target is the fleet's schema target: a node that turns Healthy or
	// Degraded below it is caught up.
	Target int `json:"target"`
}

// RecordHealthResult is the output of RecordHealth.
type RecordHealthResult struct {
	Recorded int      `json:"recorded"`
	CatchUps []string `json:"catch_ups,omitempty"`
}
