package domain

// PrepareOntologyParams is the input of PrepareOntology.
type PrepareOntologyParams struct {
	Version int `json:"version"`
	// CatchUp is set when the sync only catches some nodes up to the
	// fleet's ontology; otherwise Version becomes the fleet's target.
	CatchUp bool `json:"catch_up,omitempty"`
}

// PrepareOntologyResult describes the ontology a sync pushes.
type PrepareOntologyResult struct {
	Version  int            `json:"version"`
	Checksum string         `json:"checksum"`
	Terms    int            `json:"terms"`
	Kinds    map[string]int `json:"kinds"`
}

// SyncNodeOntologyParams is the input of SyncNodeOntology.
type SyncNodeOntologyParams struct {
	Node       NodeRef `json:"node"`
	Version    int     `json:"version"`
	WorkflowID string  `json:"workflow_id"`
}

// SyncNodeOntologyResult is the output of SyncNodeOntology.
type SyncNodeOntologyResult struct {
	From         int `json:"from"`
	To           int `json:"to"`
	TermsWritten int `json:"terms_written"`
}
