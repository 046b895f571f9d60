package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/network"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/syndb/federation/internal/flightcodec"
)

// ErrTypeRelayLimit is the Temporal error type of a transfer a circuit
// relay cut at its limits: a retry through the same relay is cut again.
const ErrTypeRelayLimit = "RelayLimit"

// relayCut turns the failure of a Flight transfer that ran over a relayed
// connection, when the transport broke under it (the stream or connection
// reset, as a circuit relay v2 does once a relayed connection reaches its
// data or duration limit), into a non-retryable error that names those
// limits. Any other error is returned as it is.
func relayCut(node string, relayed bool, err error) error {
	if err == nil || !relayed || !brokenTransport(err) {
		return err
	}
	msg := fmt.Sprintf("%s: the Flight transfer through a circuit relay was cut: a relay resets a relayed connection "+
		"once it has carried its data limit (SYNDB_RELAY_MAX_DATA bytes) or lived its time limit (SYNDB_RELAY_MAX_DURATION); "+
		"raise the relay's limits or give the node a direct route to the hub (%v)", node, err)
	// No cause: the workflow reports an error's innermost message, which
	// is this one, with the transport's own error in it.
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeRelayLimit, nil)
}

// brokenTransport reports whether err is the transport breaking under a
// stream, rather than an answer of the node or a cancellation.
func brokenTransport(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, network.ErrReset) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unavailable {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "stream reset") || strings.Contains(msg, "connection reset")
}

// flightReader is a Flight reader whose error, when the relay carrying it
// cut it, names the relay's limits (relayCut).
type flightReader struct {
	*flightcodec.Reader
	node    string
	relayed *atomic.Bool
}

// Err is the reader's error, translated by relayCut.
func (r *flightReader) Err() error { return relayCut(r.node, r.relayed.Load(), r.Reader.Err()) }
