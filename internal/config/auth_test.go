package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAuthSettingsAreChecked(t *testing.T) {
	credentials(t)
	for _, tc := range []struct{ key, value, why string }{
		{"SYNDB_AUTH_CACHE_TTL", "10s", "outside 0s..4s"},
		{"SYNDB_AUTH_CACHE_TTL", "-1s", "outside 0s..4s"},
		{"SYNDB_AUTH_CACHE_TTL", "soon", "not a valid"},
		{"SYNDB_AUTH_CACHE_SIZE", "0", "outside 1..1000000"},
		{"SYNDB_AUTH_LAST_USED_FLUSH", "5m", "outside 100ms..1m"},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			t.Setenv(tc.key, tc.value)
			_, err := Load[API]()
			require.ErrorContains(t, err, tc.key)
			require.ErrorContains(t, err, tc.why)
		})
	}
	c, err := Load[API]()
	require.NoError(t, err)
	require.Equal(t, Auth{CacheTTL: 2 * time.Second, CacheSize: 10000, LastUsedFlush: 5 * time.Second}, c.Auth)
	t.Setenv("SYNDB_AUTH_CACHE_TTL", "0")
	c, err = Load[API]()
	require.NoError(t, err, "0 turns the cache off")
	require.Zero(t, c.Auth.CacheTTL)
}

func TestKeyLifetimes(t *testing.T) {
	t.Parallel()
	for _, ok := range []time.Duration{0, time.Minute, 720 * time.Hour, MaxKeyTTL} {
		require.NoError(t, CheckKeyTTL("--ttl", ok), ok)
	}
	for _, bad := range []time.Duration{time.Second, -time.Hour, MaxKeyTTL + time.Second} {
		require.ErrorContains(t, CheckKeyTTL("--ttl", bad), "--ttl: ", bad)
	}
	for _, ok := range []time.Duration{0, 24 * time.Hour, MaxRotationGrace} {
		require.NoError(t, CheckRotationGrace("--grace", ok), ok)
	}
	for _, bad := range []time.Duration{-time.Second, MaxRotationGrace + time.Second} {
		require.ErrorContains(t, CheckRotationGrace("--grace", bad), "is outside 0s..720h0m0s", bad)
	}
}
