// Package wire holds the hub–node message set, generated from
// schemas/proto/syndb/federation/v1/federation.proto (regenerate with
// `go tool task proto`), with the validation every request passes before a
// handler sees it and conversions to the Go types of the packages that use
// the messages.
package wire
