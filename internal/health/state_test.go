package health_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/health"
)

func TestParseState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    health.State
		wantErr bool
	}{
		{in: "unknown", want: health.Unknown},
		{in: "healthy", want: health.Healthy},
		{in: "degraded", want: health.Degraded},
		{in: "unreachable", want: health.Unreachable},
		{in: "", wantErr: true},
		{in: "Healthy", wantErr: true},
		{in: " healthy", wantErr: true},
		{in: "down", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := health.ParseState(tt.in)
			if tt.wantErr {
				require.ErrorIs(t, err, health.ErrInvalidState)
				require.ErrorContains(t, err, `"`+tt.in+`"`, "the error names the bad value")
				require.ErrorContains(t, err, "unknown, healthy, degraded, unreachable", "the error names the valid values")
				require.Empty(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestStatePredicates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		state    health.State
		valid    bool
		routable bool
	}{
		{state: health.Unknown, valid: true, routable: false},
		{state: health.Healthy, valid: true, routable: true},
		{state: health.Degraded, valid: true, routable: true},
		{state: health.Unreachable, valid: true, routable: false},
		{state: "", valid: false, routable: false},
		{state: "HEALTHY", valid: false, routable: false},
	}
	for _, tt := range tests {
		t.Run(string(tt.state), func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.valid, tt.state.Valid())
			require.Equal(t, tt.routable, tt.state.Routable())
		})
	}
}

// The values are a storage format: clusters.health has a CHECK constraint
// on exactly these strings.
func TestStateValuesMatchTheDatabase(t *testing.T) {
	t.Parallel()
	require.Equal(t, "unknown", string(health.Unknown))
	require.Equal(t, "healthy", string(health.Healthy))
	require.Equal(t, "degraded", string(health.Degraded))
	require.Equal(t, "unreachable", string(health.Unreachable))
}
