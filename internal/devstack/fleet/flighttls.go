package fleet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/syndb/federation/internal/certpin"
)

// flightCertLifetime is how long a dev node's Flight certificate is valid.
const flightCertLifetime = 10 * 365 * 24 * time.Hour

// flightTLS returns the settings that serve node name's Flight TCP listener
// over TLS: a self-signed certificate for 127.0.0.1 and its key under
// nodes/<name>, written on first use and kept, so the pin the node
// registers stays the same across restarts.
func (f *Federation) flightTLS(name string) (map[string]string, error) {
	dir := filepath.Join(f.opts.Root, "nodes", name)
	certFile, keyFile := filepath.Join(dir, "flight.crt"), filepath.Join(dir, "flight.key")
	_, errCert := os.Stat(certFile)
	_, errKey := os.Stat(keyFile)
	switch {
	case errCert == nil && errKey == nil:
	case errors.Is(errCert, fs.ErrNotExist) || errors.Is(errKey, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
		if err := certpin.WriteSelfSigned(certFile, keyFile, []string{"127.0.0.1", "localhost"}, flightCertLifetime); err != nil {
			return nil, fmt.Errorf("node %s: Flight certificate: %w", name, err)
		}
	default:
		return nil, fmt.Errorf("node %s: Flight certificate: %w", name, errors.Join(errCert, errKey))
	}
	return map[string]string{"SYNDB_FLIGHT_TLS_CERT": certFile, "SYNDB_FLIGHT_TLS_KEY": keyFile}, nil
}
