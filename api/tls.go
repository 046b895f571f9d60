package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/syndb/federation/internal/config"
)

// Certificate is the TLS certificate the HTTP API and the Flight server
// serve, read from its PEM files. Reload reads them again; a handshake
// always gets the last certificate that loaded.
type Certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// LoadCertificate reads the certificate and key of c. It refuses files that
// cannot be read or parsed, a key that is not the certificate's, and a
// certificate outside its validity period, naming the files.
func LoadCertificate(c config.TLS) (*Certificate, error) {
	cert := &Certificate{certFile: c.Cert, keyFile: c.Key}
	if err := cert.Reload(); err != nil {
		return nil, err
	}
	return cert, nil
}

// Reload reads the files again and serves their certificate from the next
// handshake on. On error the certificate served so far stays.
func (c *Certificate) Reload() error {
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s (SYNDB_TLS_CERT, SYNDB_TLS_KEY): %w", c.certFile, c.keyFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fmt.Errorf("TLS certificate %s: %w", c.certFile, err)
		}
		pair.Leaf = leaf
	}
	now := time.Now()
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return fmt.Errorf("TLS certificate %s is valid from %s to %s, not now (%s)", c.certFile,
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	c.cur.Store(&pair)
	return nil
}

// Leaf is the certificate served now.
func (c *Certificate) Leaf() *x509.Certificate { return c.cur.Load().Leaf }

// serverConfig is the TLS configuration of the API's listeners: TLS 1.2 at
// least (Go prefers 1.3 whenever the client offers it), the latest loaded
// certificate. HTTP and gRPC add their ALPN protocols themselves.
func (c *Certificate) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cur.Load(), nil
		},
	}
}

// ReloadOnHangup reloads the certificate on every SIGHUP until ctx ends,
// logging the outcome; a certificate that fails to load leaves the
// current one in place.
func (c *Certificate) ReloadOnHangup(ctx context.Context, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := c.Reload(); err != nil {
				log.Error("tls certificate reload failed; serving the previous one", "err", err)
				continue
			}
			log.Info("tls certificate reloaded", "subject", c.Leaf().Subject.String(), "not_after", c.Leaf().NotAfter)
		}
	}
}
