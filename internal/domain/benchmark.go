package domain

import (
	"slices"
	"strings"
	"time"
)

// BenchmarkKind is what a node benchmark measures.
type BenchmarkKind string

// The kinds of a node benchmark, each one row per node and run.
const (
	// BenchmarkPing is the HealthPing round trip over the hub's libp2p
	// connection to the node, in milliseconds (the median of a few).
	BenchmarkPing BenchmarkKind = "ping"
	// BenchmarkAggregate is the latency of a standard aggregate over the
	// node's neurons (BenchmarkAggregateSQL), sent over SQL over libp2p as
	// a federated query's share is, in milliseconds (the median of a few).
	BenchmarkAggregate BenchmarkKind = "aggregate"
	// BenchmarkFlightRows is the rows a second of a bounded Flight read of
	// the node's neurons over the hub's data plane.
	BenchmarkFlightRows BenchmarkKind = "flight_rows"
	// BenchmarkFlightBytes is the same read's Arrow data in MB (10^6
	// bytes) a second.
	BenchmarkFlightBytes BenchmarkKind = "flight_bytes"
)

// BenchmarkKinds are the kinds every node is measured in, in the order a
// benchmark measures them.
var BenchmarkKinds = []BenchmarkKind{BenchmarkPing, BenchmarkAggregate, BenchmarkFlightRows, BenchmarkFlightBytes}

// Valid reports whether k is one of BenchmarkKinds.
func (k BenchmarkKind) Valid() bool { return slices.Contains(BenchmarkKinds, k) }

// Unit is the unit of k's values.
func (k BenchmarkKind) Unit() string {
	switch k {
	case BenchmarkPing, BenchmarkAggregate:
		return "ms"
	case BenchmarkFlightRows:
		return "rows/s"
	case BenchmarkFlightBytes:
		return "MB/s"
	}
	return ""
}

// BenchmarkKindNames lists the kinds, comma-separated, for messages.
func BenchmarkKindNames() string {
	names := make([]string, len(BenchmarkKinds))
	for i, k := range BenchmarkKinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// BenchmarkAggregateSQL is the standard aggregate a benchmark times on
// each node: a count and a mean over the neuron table, which every node
// from schema version 2 on has.
const BenchmarkAggregateSQL = "SELECT count(), avg(voxel_volume) FROM neuron"

// Routing reads a node's recent benchmark figure as the median of its
// last BenchmarkFigureSamples successful aggregates measured within
// BenchmarkFigureWindow (none: the node has no figure).
const (
	BenchmarkFigureSamples = 5
	BenchmarkFigureWindow  = 24 * time.Hour
)

// MaxBenchmarkError caps the reason a failed figure keeps.
const MaxBenchmarkError = 512

// BenchmarkFigure is one kind measured on one node: a value, or why there
// is none.
type BenchmarkFigure struct {
	Kind BenchmarkKind `json:"kind"`
	// Value is in Kind's unit; 0 when the kind failed.
	Value float64 `json:"value,omitempty"`
	OK    bool    `json:"ok"`
	// Error says why the kind could not be measured (not OK).
	Error string `json:"error,omitempty"`
	// Path is the path of the hub's connection to the node when it was
	// measured: direct, hole-punched or relayed ("" without one).
	Path       string    `json:"path,omitempty"`
	MeasuredAt time.Time `json:"measured_at"`
}

// FailedFigure is kind recorded as failed at at, for reason (capped at
// MaxBenchmarkError).
func FailedFigure(kind BenchmarkKind, reason string, at time.Time) BenchmarkFigure {
	return BenchmarkFigure{Kind: kind, Error: CapText(reason, MaxBenchmarkError), MeasuredAt: at}
}

// CapText is s cut to at most limit bytes, on a character boundary.
func CapText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "")
}

// Benchmark is one recorded row of the benchmarks table: a figure of one
// node in one run.
type Benchmark struct {
	ID         int64         `json:"id"`
	WorkflowID string        `json:"workflow_id"`
	RunID      string        `json:"run_id"`
	Node       string        `json:"node"`
	Kind       BenchmarkKind `json:"kind"`
	// Value is nil for a failed row.
	Value      *float64  `json:"value"`
	Unit       string    `json:"unit"`
	Path       string    `json:"path"`
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty"`
	MeasuredAt time.Time `json:"measured_at"`
}

// BenchmarkNodeParams is the input of BenchmarkNode.
type BenchmarkNodeParams struct {
	Node NodeRef `json:"node"`
}

// BenchmarkNodeResult is the output of BenchmarkNode: one figure per kind,
// in BenchmarkKinds' order, failed ones included.
type BenchmarkNodeResult struct {
	Figures []BenchmarkFigure `json:"figures"`
}

// RecordBenchmarksParams is the input of RecordBenchmarks: the rows of
// some nodes of one run.
type RecordBenchmarksParams struct {
	Rows []Benchmark `json:"rows"`
}

// RecordBenchmarksResult is the output of RecordBenchmarks.
type RecordBenchmarksResult struct {
	// Recorded counts the rows now in the table, whether this attempt or an
	// earlier one wrote them.
	Recorded int `json:"recorded"`
}
