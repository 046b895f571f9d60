package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/devstack/fleet"
)

// TestDevBannerSaysHowToReachTheAPI: the banner of `syndb dev` gives the
// API's URL, the Flight location's scheme and, with --tls, the curl that
// trusts the dev certificate by its path in the repository.
func TestDevBannerSaysHowToReachTheAPI(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	opts := fleet.DevOptions(root)
	env := map[string]string{"SYNDB_API_FLIGHT_PUBLIC_ADDR": "127.0.0.1:50051"}

	plain := devBanner(&fleet.Federation{APIURL: "http://127.0.0.1:8080", APIKey: "sdb_k", Env: env}, opts, root, time.Second)
	require.Contains(t, plain, "API          http://127.0.0.1:8080")
	require.Contains(t, plain, "Flight       grpc://127.0.0.1:50051")
	require.Contains(t, plain, `Try:  curl -s -X POST http://127.0.0.1:8080/v1/federation/schema/sync -H "Authorization: Bearer sdb_k"`)
	require.NotContains(t, plain, "cacert")

	cert := filepath.Join(root, ".dev", fleet.APICertFile)
	secure := devBanner(&fleet.Federation{APIURL: "https://127.0.0.1:8080", APIKey: "sdb_k", APICert: cert, Env: env}, opts, root, time.Second)
	require.Contains(t, secure, "API          https://127.0.0.1:8080")
	require.Contains(t, secure, "Flight       grpc+tls://127.0.0.1:50051")
	require.Contains(t, secure, "curl -s --cacert .dev/tls/api.crt https://127.0.0.1:8080/healthz")
	require.Contains(t, secure, `Try:  curl -s --cacert .dev/tls/api.crt -X POST https://127.0.0.1:8080/v1/federation/schema/sync`)
}
