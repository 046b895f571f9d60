package activities

import (
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
)

// classify translates a node's answer to a libp2p request into what
// Temporal does with it. err is wrapped with what was asked of which node;
// classify keeps that message and decides only whether a retry can help:
//
//   - drift (the node's ledger disagrees with the hub's): non-retryable,
//     domain.ErrTypeDrift;
//   - invalid, unauthorized, not_found (the node refused this very request,
//     or it names something the node does not have): non-retryable,
//     domain.ErrTypeInvalid, since a retry sends the same request and gets the
//     same answer;
//   - anything else (unavailable, internal, a node that cannot be reached,
//     a stream that broke or timed out, a cancelled activity): returned as
//     it is, and retried by the activity's retry policy.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case p2p.IsCode(err, p2p.CodeDrift):
		return temporal.NewNonRetryableApplicationError(err.Error(), domain.ErrTypeDrift, err)
	case p2p.IsCode(err, p2p.CodeInvalid), p2p.IsCode(err, p2p.CodeUnauthorized), p2p.IsCode(err, p2p.CodeNotFound):
		return temporal.NewNonRetryableApplicationError(err.Error(), domain.ErrTypeInvalid, err)
	default:
		return err
	}
}
