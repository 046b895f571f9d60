// Package activities holds the hub's Temporal activities: every side effect
// of the federation's workflows (libp2p messages to nodes, ClickHouse and
// PostgreSQL work). Activities are methods on structs that receive their
// dependencies in a constructor, registered once under the activity names
// of package domain, which also holds their params and results.
package activities
