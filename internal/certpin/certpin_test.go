package certpin_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/certpin"
)

// writeCert writes a self-signed certificate and key to a temporary
// directory and loads them.
func writeCert(t *testing.T) (tls.Certificate, []byte, string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "flight.crt"), filepath.Join(dir, "flight.key")
	require.NoError(t, certpin.WriteSelfSigned(certFile, keyFile, []string{"127.0.0.1", "localhost"}, time.Hour))
	cert, pin, err := certpin.Load(certFile, keyFile)
	require.NoError(t, err)
	return cert, pin, certFile
}

// TestSelfSigned: the generator writes an ECDSA certificate for its hosts,
// and Load's pin is the SHA-256 of the DER in the PEM file, as
// x509 parses it independently.
func TestSelfSigned(t *testing.T) {
	t.Parallel()
	_, pin, certFile := writeCert(t)
	raw, err := os.ReadFile(certFile)
	require.NoError(t, err)
	block, _ := pem.Decode(raw)
	require.NotNil(t, block)
	c, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	require.Equal(t, x509.ECDSA, c.PublicKeyAlgorithm)
	require.Equal(t, []string{"localhost"}, c.DNSNames)
	require.Len(t, c.IPAddresses, 1)
	require.Equal(t, "127.0.0.1", c.IPAddresses[0].String())
	require.Equal(t, pin, certpin.Fingerprint(c.Raw))
	require.Len(t, pin, 32)
}

// TestPinnedHandshake: a client pinned to the server's certificate
// completes the handshake and reads what the server wrote; one pinned to
// another certificate is refused with ErrMismatch; a pin that is not a
// SHA-256 is refused before any dial.
func TestPinnedHandshake(t *testing.T) {
	t.Parallel()
	cert, pin, _ := writeCert(t)
	_, otherPin, _ := writeCert(t)
	lis, err := tls.Listen("tcp", "127.0.0.1:0", certpin.ServerConfig(cert))
	require.NoError(t, err)
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("rows"))
			_ = c.Close()
		}
	}()
	for _, tc := range []struct {
		name string
		pin  []byte
		ok   bool
	}{
		{"the server's pin", pin, true},
		{"another certificate's pin", otherPin, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := certpin.ClientConfig(tc.pin)
			require.NoError(t, err)
			d := tls.Dialer{Config: cfg}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", lis.Addr().String())
			if !tc.ok {
				require.ErrorIs(t, err, certpin.ErrMismatch)
				require.ErrorContains(t, err, "the server's certificate has SHA-256")
				return
			}
			require.NoError(t, err)
			defer func() { _ = c.Close() }()
			got, err := io.ReadAll(c)
			require.NoError(t, err)
			require.Equal(t, "rows", string(got))
		})
	}
	_, err = certpin.ClientConfig(pin[:31])
	require.ErrorContains(t, err, "a certificate pin is a SHA-256 of 32 bytes, not 31")
	_, err = certpin.ClientConfig(nil)
	require.Error(t, err)
}
