package fleet

import (
	"crypto/sha256"
	"encoding/pem"
	"os"
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
