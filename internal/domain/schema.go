package domain

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
