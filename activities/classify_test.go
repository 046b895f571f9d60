package activities

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
)

// TestClassify: every kind of answer a node can give, wrapped as the
// activities wrap it, becomes the Temporal error the table says.
func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		// errType is the non-retryable type, "" for an error that is retried.
		errType string
	}{
		{"drift", p2p.Errorf(p2p.CodeDrift, "version 3 has checksum x"), domain.ErrTypeDrift},
		{"invalid", p2p.Errorf(p2p.CodeInvalid, "table t has no column c"), domain.ErrTypeInvalid},
		{"unauthorized", p2p.Errorf(p2p.CodeUnauthorized, "not my hub"), domain.ErrTypeInvalid},
		{"not found", p2p.Errorf(p2p.CodeNotFound, "no table t on lab-a"), domain.ErrTypeInvalid},
		{"unavailable", p2p.Errorf(p2p.CodeUnavailable, "clickhouse: connection refused"), ""},
		{"internal", p2p.Errorf(p2p.CodeInternal, "read datasets"), ""},
		{"unreachable", fmt.Errorf("%w: open stream: no addresses", p2p.ErrUnreachable), ""},
		{"timeout", fmt.Errorf("/syndb/cluster/health/1.0.0 call: %w", context.DeadlineExceeded), ""},
		{"cancelled", context.Canceled, ""},
		{"broken stream", errors.New("read response: stream reset"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := fmt.Errorf("sync of lab-a: %w", tc.err)
			got := classify(in)
			var appErr *temporal.ApplicationError
			if tc.errType == "" {
				require.Same(t, in, got, "a retryable error passes unchanged")
				require.False(t, errors.As(got, &appErr))
				return
			}
			require.ErrorAs(t, got, &appErr)
			require.Equal(t, in.Error(), appErr.Message(), "the message is the caller's")
			require.True(t, appErr.NonRetryable())
			require.Equal(t, tc.errType, appErr.Type())
			require.ErrorIs(t, got, tc.err, "the cause stays reachable")
		})
	}
	require.NoError(t, classify(nil))
}
