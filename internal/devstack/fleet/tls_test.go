package fleet

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/certpin"
)

// TestFlightTLS: a dev node's Flight certificate and key are written on
// first use and kept, so its pin (the SHA-256 of the PEM file's DER, as
// computed here) is the same on every start, and they load as a pair.
func TestFlightTLS(t *testing.T) {
	t.Parallel()
	f := &Federation{opts: Options{Root: t.TempDir()}}
	pins := make([][32]byte, 2)
	for i := range pins {
		env, err := f.flightTLS("lab-a")
		require.NoError(t, err)
		raw, err := os.ReadFile(env["SYNDB_FLIGHT_TLS_CERT"])
		require.NoError(t, err)
		block, _ := pem.Decode(raw)
		require.NotNil(t, block)
		pins[i] = sha256.Sum256(block.Bytes)
		_, pin, err := certpin.Load(env["SYNDB_FLIGHT_TLS_CERT"], env["SYNDB_FLIGHT_TLS_KEY"])
		require.NoError(t, err)
		require.Equal(t, pins[i][:], pin)
		st, err := os.Stat(env["SYNDB_FLIGHT_TLS_KEY"])
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	}
	require.Equal(t, pins[0], pins[1], "a restarted node serves the same certificate")
}

// TestAPITLS: the API's dev certificate is written under tls/ on first use
// and kept, its key readable by its owner only, and the federation's client
// trusts a server that presents it, by IP and by name.
func TestAPITLS(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	f := &Federation{opts: Options{Root: root}}
	var first []byte
	for i := range 2 {
		env, client, err := f.apiTLS()
		require.NoError(t, err)
		require.Equal(t, filepath.Join(root, "tls", "api.crt"), env["SYNDB_TLS_CERT"])
		require.Equal(t, filepath.Join(root, "tls", "api.key"), env["SYNDB_TLS_KEY"])
		raw, err := os.ReadFile(env["SYNDB_TLS_CERT"])
		require.NoError(t, err)
		if i == 0 {
			first = raw
		}
		require.Equal(t, first, raw, "a restarted dev federation serves the same certificate")
		st, err := os.Stat(env["SYNDB_TLS_KEY"])
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

		pair, err := tls.LoadX509KeyPair(env["SYNDB_TLS_CERT"], env["SYNDB_TLS_KEY"])
		require.NoError(t, err)
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		srv.StartTLS()
		_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
		require.NoError(t, err)
		for _, host := range []string{"127.0.0.1", "localhost"} {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+net.JoinHostPort(host, port)+"/healthz", nil)
			require.NoError(t, err)
			resp, err := client.Do(req)
			require.NoError(t, err, host)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusNoContent, resp.StatusCode)
		}
		srv.Close()
	}
}
