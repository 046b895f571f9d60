package nodeagent

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/syndb/federation/internal/certpin"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/flightcodec"
	"github.com/syndb/federation/internal/wire"
)

// writeFlightCert writes a self-signed certificate and key for 127.0.0.1
// and returns their files and the SHA-256 of the DER in the certificate
// file, computed here from the PEM.
func writeFlightCert(tb testing.TB) (certFile, keyFile string, pin []byte) {
	tb.Helper()
	dir := tb.TempDir()
	certFile, keyFile = filepath.Join(dir, "flight.crt"), filepath.Join(dir, "flight.key")
	require.NoError(tb, certpin.WriteSelfSigned(certFile, keyFile, []string{"127.0.0.1"}, time.Hour))
	raw, err := os.ReadFile(certFile)
	require.NoError(tb, err)
	block, _ := pem.Decode(raw)
	require.NotNil(tb, block)
	sum := sha256.Sum256(block.Bytes)
	return certFile, keyFile, sum[:]
}

// tlsFlight connects to the grpcs:// location ep names with creds.
func tlsFlight(tb testing.TB, ep *wire.GetFlightEndpointResponse, creds credentials.TransportCredentials) *flightFixture {
	tb.Helper()
	addr, ok := strings.CutPrefix(ep.GetLocation(), "grpcs://")
	require.True(tb, ok, ep.GetLocation())
	c, err := flight.NewClientWithMiddleware(addr, nil, nil, grpc.WithTransportCredentials(creds), flightcodec.DialOption())
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = c.Close() })
	return &flightFixture{client: c}
}

// TestFlightOverTLS: a direct-plane node given a certificate and key
// registers the certificate's SHA-256 and hands out grpcs://. A client
// pinned to another certificate is refused in the handshake, before the
// Flight handler sees the ticket; so is a plaintext client; the same
// ticket, over TLS pinned to the registered certificate, then reads the
// rows the table holds, and only once.
func TestFlightOverTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pin := writeFlightCert(t)
	_, _, otherPin := writeFlightCert(t)
	f := startAgentWith(t, "lab-tls", "flight_tls", config.DataPlaneDirect, func(c *config.Node) {
		c.FlightTLSCert, c.FlightTLSKey = certFile, keyFile
	})
	require.Equal(t, pin, f.registered.GetFlightCertSha256())
	require.Equal(t, f.agent.cfg.FlightAddr, f.registered.GetFlightAddr())
	conn := openDB(t, f.db)
	rows := everyRows()
	createEvery(t, conn, "every", rows)
	require.Equal(t, uint64(len(rows)), count(t, conn, "every"))

	ep := f.endpoint(t, &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "every"}})
	require.Equal(t, "grpcs://"+f.agent.cfg.FlightAddr, ep.GetLocation())
	pinned := func(pin []byte) credentials.TransportCredentials {
		cfg, err := certpin.ClientConfig(pin)
		require.NoError(t, err)
		return credentials.NewTLS(cfg)
	}
	for _, tc := range []struct {
		name  string
		creds credentials.TransportCredentials
		want  string
	}{
		{"another certificate's pin", pinned(otherPin), certpin.ErrMismatch.Error()},
		{"plaintext", insecure.NewCredentials(), "connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tlsFlight(t, ep, tc.creds).getRows(t, ep.GetTicket())
			requireCode(t, codes.Unavailable, err)
			require.ErrorContains(t, err, tc.want)
		})
	}
	c := tlsFlight(t, ep, pinned(pin))
	_, got, err := c.getRows(t, ep.GetTicket())
	require.NoError(t, err, "the refused handshakes did not use the ticket")
	require.Equal(t, expectedRows(rows), got)
	_, _, err = c.getRows(t, ep.GetTicket())
	requireCode(t, codes.PermissionDenied, err)
}

// TestFlightTLSOnlyOnDirect: on the libp2p data plane a node with a
// certificate still serves TLS on its TCP listener but registers no
// address and no pin, as the hub dials neither; a node whose certificate
// files do not load does not build.
func TestFlightTLSOnlyOnDirect(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pin := writeFlightCert(t)
	f := startAgentWith(t, "lab-tls-p2p", "flight_tls_p2p", config.DataPlaneLibp2p, func(c *config.Node) {
		c.FlightTLSCert, c.FlightTLSKey = certFile, keyFile
	})
	require.Empty(t, f.registered.GetFlightAddr())
	require.Empty(t, f.registered.GetFlightCertSha256())
	tlsCfg, err := certpin.ClientConfig(pin)
	require.NoError(t, err)
	tc, err := (&tls.Dialer{Config: tlsCfg}).DialContext(t.Context(), "tcp", f.agent.cfg.FlightAddr)
	require.NoError(t, err, "the TCP listener serves the certificate")
	require.NoError(t, tc.Close())

	cfg := f.agent.cfg
	cfg.FlightTLSKey = filepath.Join(t.TempDir(), "missing.key")
	_, err = New(cfg, f.agent.log)
	require.ErrorContains(t, err, "SYNDB_FLIGHT_TLS_CERT: load TLS certificate "+certFile)
}
