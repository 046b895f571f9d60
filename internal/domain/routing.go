package domain

// Exclusion says why a node was left out of a routing plan.
type Exclusion struct {
	Name   string `json:"name"`
	Reason Reason `json:"reason"`
	// Detail is a human-readable explanation, e.g. "schema version 2 < required 3".
	Detail string `json:"detail"`
}

// Reason says why a node was excluded.
type Reason string

// The reasons a node is excluded. When several apply, Route reports the first
// in this order (routing.Route): revoked, then health (unreachable, unknown), then drift, then
// schema. A node that cannot be reached or has not been checked has no
// trustworthy schema information, and a drifted ledger makes the version
// number meaningless.
const (
	// ReasonRevoked: the node's enrollment has been revoked.
	ReasonRevoked Reason = "revoked"
	// ReasonUnreachable: the node failed consecutive pings.
	ReasonUnreachable Reason = "unreachable"
	// ReasonUnknown: the node has not been checked yet (or its health is not
	// a valid state).
	ReasonUnknown Reason = "unknown"
	// ReasonDrift: the node's migration ledger disagrees with the hub's.
	ReasonDrift Reason = "drift"
	// ReasonSchemaBehind: the node's schema version is below Need.MinSchema.
	ReasonSchemaBehind Reason = "schema_behind"
	// ReasonSchemaAhead: the node's schema version is above Need.MaxSchema.
	ReasonSchemaAhead Reason = "schema_ahead"
	// ReasonNotRegistered: Need.Nodes names a node that is not registered.
	ReasonNotRegistered Reason = "not_registered"
)
