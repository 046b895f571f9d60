package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRelayCut(t *testing.T) {
	t.Parallel()
	reset := fmt.Errorf("read synapse over Flight: %w", network.ErrReset)
	cases := []struct {
		name    string
		relayed bool
		err     error
		named   bool // the error names the relay's limits
	}{
		{"reset through a relay", true, reset, true},
		{"unavailable through a relay", true, status.Error(codes.Unavailable, "error reading from server: EOF"), true},
		{"unexpected EOF through a relay", true, fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"stream reset text through a relay", true, errors.New("rpc error: code = Internal desc = stream reset"), true},
		{"reset on a direct connection", false, reset, false},
		{"cancelled through a relay", true, fmt.Errorf("read: %w", context.Canceled), false},
		{"node refused through a relay", true, status.Error(codes.PermissionDenied, "bad ticket"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := relayCut("lab-nat", tc.relayed, tc.err)
			var app *temporal.ApplicationError
			if !tc.named {
				require.Equal(t, tc.err, got)
				return
			}
			require.ErrorAs(t, got, &app)
			require.True(t, app.NonRetryable())
			require.Equal(t, ErrTypeRelayLimit, app.Type())
			require.Contains(t, got.Error(), "lab-nat")
			require.Contains(t, got.Error(), tc.err.Error(), "the transport's own error is kept")
			require.Nil(t, errors.Unwrap(got), "the workflow's innermost message is this one")
			require.Contains(t, got.Error(), "SYNDB_RELAY_MAX_DATA")
			require.Contains(t, got.Error(), "SYNDB_RELAY_MAX_DURATION")
		})
	}
	require.NoError(t, relayCut("lab-nat", true, nil))
}
