package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/syndb/federation/internal/certpin"
)

// certLifetime is how long a dev certificate (a node's Flight, the API's)
// is valid.
const certLifetime = 10 * 365 * 24 * time.Hour

// certHosts are the names a dev certificate is valid for.
var certHosts = []string{"127.0.0.1", "localhost", "::1"}

// keepSelfSigned writes a self-signed certificate and key for certHosts to
// certFile and keyFile unless both exist: the same certificate serves on
// every start.
func keepSelfSigned(certFile, keyFile string) error {
	_, errCert := os.Stat(certFile)
	_, errKey := os.Stat(keyFile)
	switch {
	case errCert == nil && errKey == nil:
		return nil
	case errors.Is(errCert, fs.ErrNotExist) || errors.Is(errKey, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
			return err
		}
		return certpin.WriteSelfSigned(certFile, keyFile, certHosts, certLifetime)
	default:
		return errors.Join(errCert, errKey)
	}
}

// flightTLS returns the settings that serve node name's Flight TCP listener
// over TLS: a self-signed certificate for 127.0.0.1 and its key under
// nodes/<name>, written on first use and kept, so the pin the node
// registers stays the same across restarts.
func (f *Federation) flightTLS(name string) (map[string]string, error) {
	dir := filepath.Join(f.opts.Root, "nodes", name)
	certFile, keyFile := filepath.Join(dir, "flight.crt"), filepath.Join(dir, "flight.key")
	if err := keepSelfSigned(certFile, keyFile); err != nil {
		return nil, fmt.Errorf("node %s: Flight certificate: %w", name, err)
	}
	return map[string]string{"SYNDB_FLIGHT_TLS_CERT": certFile, "SYNDB_FLIGHT_TLS_KEY": keyFile}, nil
}

// APICertFile is where, under Options.Root, a federation started with
// Options.TLS keeps the API's self-signed certificate (.dev/tls/api.crt
// for `syndb dev --tls`); its key is beside it, api.key.
const APICertFile = "tls/api.crt"

// apiTLS writes (on first use) and loads the API's self-signed certificate
// for 127.0.0.1 and localhost, and returns the API's settings that serve it
// and a client that trusts it.
func (f *Federation) apiTLS() (map[string]string, *http.Client, error) {
	certFile := filepath.Join(f.opts.Root, APICertFile)
	keyFile := filepath.Join(filepath.Dir(certFile), "api.key")
	if err := keepSelfSigned(certFile, keyFile); err != nil {
		return nil, nil, fmt.Errorf("api TLS certificate: %w", err)
	}
	raw, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("api TLS certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, nil, fmt.Errorf("api TLS certificate %s holds no PEM certificate", certFile)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return map[string]string{"SYNDB_TLS_CERT": certFile, "SYNDB_TLS_KEY": keyFile}, client, nil
}
