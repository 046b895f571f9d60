// Package workflows holds the hub's Temporal workflows. Everything here is
// deterministic: side effects live in package activities, and the code here
// only orders them. Typed start helpers (start.go) are what the API calls.
package workflows

import "fmt"

// TaskQueue is the hub's task queue; `syndb worker` polls it.
const TaskQueue = "syndb-hub"

// Workflow type names, stable across renames of the Go functions.
const (
	SchemaSyncName = "SchemaSync"
)

// Query names.
const (
	// ProgressQuery returns a workflow's result as it stands so far.
	ProgressQuery = "progress"
)

// SchemaSyncID is the workflow ID of the sync to target version v: one
// business key per target, so concurrent requests for it join one run.
func SchemaSyncID(v int) string { return fmt.Sprintf("schema-sync-v%d", v) }
