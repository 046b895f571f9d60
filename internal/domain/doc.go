// Package domain is the federation's shared vocabulary: a node (cluster)
// and its state, a job's kind, state, spec and progress, schema versions,
// what the workflows and activities pass each other, and the error types
// every layer checks. It does no I/O. Workflows, activities, the API and
// the store all import it, and none of them imports another to borrow a
// type; the store maps rows to these types.
package domain
