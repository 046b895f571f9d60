package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/certpin"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/registry"
)

// writeCert writes a self-signed certificate for 127.0.0.1 valid for
// lifetime into dir as name.crt and name.key.
func writeCert(t *testing.T, dir, name string, lifetime time.Duration) config.TLS {
	t.Helper()
	c := config.TLS{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
	require.NoError(t, certpin.WriteSelfSigned(c.Cert, c.Key, []string{"127.0.0.1", "localhost"}, lifetime))
	return c
}

// trusting is an HTTPS client whose only root is the certificate in certFile.
func trusting(t *testing.T, certFile string, maxVersion uint16) *http.Client {
	t.Helper()
	raw, err := os.ReadFile(certFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(raw))
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: maxVersion,
			// Any version the client can speak: the server chooses.
			MinVersion: tls.VersionTLS10}}}
}

// serveTLS runs the API with cert on a loopback port and returns its URL.
func serveTLS(t *testing.T, cert *Certificate) string {
	t.Helper()
	reg, err := registry.New(t.Context(), fakeStore{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	s := New(config.API{PublicURL: "https://hub", ShutdownTimeout: 5 * time.Second},
		Deps{Store: fakeStore{}, Registry: reg, Log: slog.New(slog.DiscardHandler), SchemaHead: 3, TLS: cert})
	var lc net.ListenConfig
	lis, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return "https://" + lis.Addr().String()
}

// answer is what get read of a response.
type answer struct {
	status int
	tls    *tls.ConnectionState
	body   []byte
}

// get sends GET url with key (none when empty) and reads the answer.
func get(t *testing.T, c *http.Client, url, key string) (answer, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, tls: resp.TLS, body: raw}, err
}

// TestServeTLS: with a certificate the API answers HTTPS only, over TLS 1.3
// when the client offers it and 1.2 at least, to clients that trust the
// certificate; keys are checked as over plain HTTP.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	files := writeCert(t, t.TempDir(), "api", time.Hour)
	cert, err := LoadCertificate(files)
	require.NoError(t, err)
	base := serveTLS(t, cert)
	client := trusting(t, files.Cert, 0)

	a, err := get(t, client, base+"/healthz", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	require.Equal(t, uint16(tls.VersionTLS13), a.tls.Version, "TLS 1.3 when both sides have it")
	require.Equal(t, "h2", a.tls.NegotiatedProtocol)
	require.Equal(t, cert.Leaf().Raw, a.tls.PeerCertificates[0].Raw)

	a, err = get(t, client, base+"/v1/federation/clusters", goodKey)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	var list ClusterList
	require.NoError(t, json.Unmarshal(a.body, &list))
	require.Len(t, list.Clusters, 2, "fakeStore's clusters: %s", a.body)
	a, err = get(t, client, base+"/v1/federation/clusters", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, a.status, string(a.body))

	a, err = get(t, trusting(t, files.Cert, tls.VersionTLS12), base+"/healthz", "")
	require.NoError(t, err)
	require.Equal(t, uint16(tls.VersionTLS12), a.tls.Version, "TLS 1.2 is still served")
	_, err = get(t, trusting(t, files.Cert, tls.VersionTLS11), base+"/healthz", "")
	require.ErrorContains(t, err, "protocol version", "TLS 1.1 is refused")

	// A client that does not trust the certificate stops at the handshake.
	_, err = get(t, &http.Client{Timeout: 10 * time.Second}, base+"/healthz", "")
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)

	// Plain HTTP on the TLS port gets no API answer.
	a, err = get(t, &http.Client{Timeout: 10 * time.Second}, "http"+strings.TrimPrefix(base, "https")+"/v1/federation/clusters", goodKey)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, a.status)
	require.Contains(t, string(a.body), "HTTPS server")
}

// TestCertificateReload: Reload serves the files' new certificate from the
// next handshake on, and keeps the old one when the new files are bad.
func TestCertificateReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := writeCert(t, dir, "api", time.Hour)
	cert, err := LoadCertificate(files)
	require.NoError(t, err)
	first := cert.Leaf().Raw
	base := serveTLS(t, cert)
	// A new client each time: it trusts the files' certificate of the moment.
	client := func() *http.Client { return trusting(t, files.Cert, 0) }

	writeCert(t, dir, "api", time.Hour)
	_, err = get(t, client(), base+"/healthz", "")
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown, "until the reload the old certificate is served")
	require.NoError(t, cert.Reload())
	a, err := get(t, client(), base+"/healthz", "")
	require.NoError(t, err)
	require.NotEqual(t, first, a.tls.PeerCertificates[0].Raw)
	second := a.tls.PeerCertificates[0].Raw

	require.NoError(t, os.WriteFile(files.Key, []byte("not a key"), 0o600))
	require.ErrorContains(t, cert.Reload(), files.Key)
	a, err = get(t, client(), base+"/healthz", "")
	require.NoError(t, err)
	require.Equal(t, second, a.tls.PeerCertificates[0].Raw, "a failed reload keeps the certificate")
}

// TestLoadCertificateRefusesBadFiles: missing files, a key of another
// certificate and an expired certificate fail at start, naming the file.
func TestLoadCertificateRefusesBadFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := writeCert(t, dir, "a", time.Hour)
	b := writeCert(t, dir, "b", time.Hour)
	expired := writeCert(t, dir, "old", -30*time.Second)
	garbage := filepath.Join(dir, "garbage.crt")
	require.NoError(t, os.WriteFile(garbage, []byte("-----BEGIN NOTHING-----\n"), 0o600))
	for _, tc := range []struct {
		name  string
		files config.TLS
		want  []string
	}{
		{"missing certificate", config.TLS{Cert: filepath.Join(dir, "none.crt"), Key: a.Key}, []string{"none.crt", "no such file"}},
		{"missing key", config.TLS{Cert: a.Cert, Key: filepath.Join(dir, "none.key")}, []string{"none.key", "no such file"}},
		{"another certificate's key", config.TLS{Cert: a.Cert, Key: b.Key}, []string{a.Cert, "private key does not match public key"}},
		{"not PEM", config.TLS{Cert: garbage, Key: a.Key}, []string{garbage}},
		{"expired", expired, []string{expired.Cert, "not now"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadCertificate(tc.files)
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
	_, err := LoadCertificate(a)
	require.NoError(t, err)
}

// TestPlainServeNeedsNoCertificate: without a certificate the API serves
// plain HTTP, as before.
func TestPlainServeNeedsNoCertificate(t *testing.T) {
	t.Parallel()
	reg, err := registry.New(t.Context(), fakeStore{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	s := New(config.API{ShutdownTimeout: 5 * time.Second}, Deps{Store: fakeStore{}, Registry: reg, Log: slog.New(slog.DiscardHandler)})
	var lc net.ListenConfig
	lis, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx, lis) }()
	a, err := get(t, &http.Client{Timeout: 10 * time.Second}, fmt.Sprintf("http://%s/healthz", lis.Addr()), "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	require.Nil(t, a.tls)
	cancel()
	require.NoError(t, <-done)
}
