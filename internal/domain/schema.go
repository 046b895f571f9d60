package domain

import "time"

// ApplyHubParams is the input of ApplyHubSchema.
type ApplyHubParams struct {
	Target int `json:"target"`
	// CatchUp is set when the sync only catches some nodes up to the
	// fleet's target; otherwise Target becomes the fleet's target.
	CatchUp bool `json:"catch_up,omitempty"`
}

// MigrationResult summarises one applied migration.
type MigrationResult struct {
	Version    int    `json:"version"`
	Name       string `json:"name"`
	DurationMS int64  `json:"duration_ms"`
}

// ApplyHubResult is the output of ApplyHubSchema.
type ApplyHubResult struct {
	From    int               `json:"from"`
	To      int               `json:"to"`
	Applied []MigrationResult `json:"applied"`
}

// NodeRef names a node and how to reach it.
type NodeRef struct {
	Name          string   `json:"name"`
	PeerID        string   `json:"peer_id"`
	Addrs         []string `json:"addrs"`
	SchemaVersion int      `json:"schema_version"`
	// FlightCertSHA256 is the registered pin of the node's Flight TLS
	// certificate (Cluster.FlightCertSHA256; empty when it has none).
	FlightCertSHA256 string `json:"flight_cert_sha256,omitempty"`
	// FlightAddr is the Flight TCP address the node registered
	// (Cluster.FlightAddr), the only one the hub dials for a grpc:// or
	// grpcs:// location; empty on the libp2p data plane, where the node
	// registers none.
	FlightAddr string `json:"flight_addr,omitempty"`
}

// SyncNodeParams is the input of SyncNodeSchema.
type SyncNodeParams struct {
	Node       NodeRef `json:"node"`
	Target     int     `json:"target"`
	WorkflowID string  `json:"workflow_id"`
}

// SyncNodeResult is the output of SyncNodeSchema.
type SyncNodeResult struct {
	From    int               `json:"from"`
	To      int               `json:"to"`
	Applied []MigrationResult `json:"applied"`
}

// SyncNodesParams is the input of SyncNodesSchema: a batch of a sync's
// nodes, each synced on its own, with its own tries and timeout.
type SyncNodesParams struct {
	Nodes      []NodeRef `json:"nodes"`
	Target     int       `json:"target"`
	WorkflowID string    `json:"workflow_id"`
	// Attempts bounds each node's tries; TryTimeout bounds each try.
	Attempts   int           `json:"attempts"`
	TryTimeout time.Duration `json:"try_timeout"`
}

// NodeSyncOutcome is one node's part of a SyncNodesSchema batch: its result
// when it synced, else its last error.
type NodeSyncOutcome struct {
	Name   string         `json:"name"`
	Result SyncNodeResult `json:"result"`
	Error  string         `json:"error,omitempty"`
	// ErrType is ErrTypeDrift or ErrTypeInvalid for an error a retry cannot
	// mend, "" for a node that could not be reached.
	ErrType    string `json:"err_type,omitempty"`
	Attempts   int    `json:"attempts"`
	DurationMS int64  `json:"duration_ms"`
}

// Synced reports whether the node synced.
func (o NodeSyncOutcome) Synced() bool { return o.Error == "" }

// SyncNodesResult is the output of SyncNodesSchema, one outcome per node in
// the order of the params.
type SyncNodesResult struct {
	Nodes []NodeSyncOutcome `json:"nodes"`
}
