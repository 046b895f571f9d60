package config

import (
	"errors"
	"fmt"
	"net/url"
)

// TLS is the certificate the hub's API serves its HTTP API (HTTPS) and its
// Arrow Flight server (gRPC over TLS) with: PEM files, both or neither.
// Without them both serve plaintext.
type TLS struct {
	// Cert is the PEM certificate chain, the server's own certificate first.
	Cert string `env:"SYNDB_TLS_CERT"`
	// Key is the PEM private key of Cert's first certificate.
	Key string `env:"SYNDB_TLS_KEY"`
}

// Enabled reports whether a certificate is configured.
func (t TLS) Enabled() bool { return t.Cert != "" }

// Validate checks that the certificate and key come together. Whether the
// files can be read and belong together is checked when the API starts.
func (t TLS) Validate() error {
	if (t.Cert == "") != (t.Key == "") {
		return errors.New("SYNDB_TLS_CERT and SYNDB_TLS_KEY: give both (HTTPS and Flight over TLS) or neither (plaintext)")
	}
	return nil
}

// defaultPublicHost is the host and port of the API's default public URL.
const defaultPublicHost = "127.0.0.1:8080"

// checkPublicURL fills the API's public URL when it is not set (http://, or
// https:// under TLS) and refuses one whose scheme is not what the API
// serves: under TLS the links it hands out must be https://.
func (c *API) checkPublicURL() error {
	if c.PublicURL == "" {
		c.PublicURL = "http://" + defaultPublicHost
		if c.TLS.Enabled() {
			c.PublicURL = "https://" + defaultPublicHost
		}
		return nil
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("SYNDB_API_PUBLIC_URL: %.100q is not an http:// or https:// URL", c.PublicURL)
	}
	if c.TLS.Enabled() && u.Scheme != "https" {
		return fmt.Errorf("SYNDB_API_PUBLIC_URL: %.100q is plain HTTP, but SYNDB_TLS_CERT makes the API serve HTTPS: give its https:// URL", c.PublicURL)
	}
	return nil
}
