package domain

// SyncNodeCatalogParams is the input of SyncNodeCatalog.
type SyncNodeCatalogParams struct {
	Node       NodeRef `json:"node"`
	WorkflowID string  `json:"workflow_id"`
}

// SyncNodeCatalogResult is the output of SyncNodeCatalog: counts only, the
// catalog itself goes straight to PostgreSQL.
type SyncNodeCatalogResult struct {
	CatalogChange
	// Skipped counts datasets the node reported with an ID that is not a
	// UUID, or a second time.
	Skipped int `json:"skipped,omitempty"`
}

// CatalogChange is what writing one node's catalog changed.
type CatalogChange struct {
	// Datasets is the number of datasets the node reported.
	Datasets int `json:"datasets"`
	Added    int `json:"added"`
	Updated  int `json:"updated"`
	// Removed counts the datasets the node no longer reports.
	Removed int `json:"removed"`
	// Rows is the sum of the reported datasets' row counts.
	Rows uint64 `json:"rows"`
	// Stale is set when a catalog fetched later was written already, so
	// this one was not.
	Stale bool `json:"stale,omitempty"`
}
