package activities

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/syndb/federation/internal/certpin"
	"github.com/syndb/federation/internal/domain"
)

// pinnedRoute reaches a grpcs:// Flight location at addr over TLS that
// accepts only the certificate whose SHA-256 node registered. A node that
// registered none is refused for good; so is a call whose handshake met
// another certificate (its refused says so): the pin comes with the
// activity's input, so a retry would meet the same mismatch. The node
// re-registers a new certificate, and the next workflow reads its pin.
func pinnedRoute(node domain.NodeRef, addr string) (flightRoute, error) {
	if node.FlightCertSHA256 == "" {
		return flightRoute{}, invalidf("%s: Flight location %q is TLS, but the node registered no certificate to check it against",
			node.Name, grpcsScheme+addr)
	}
	pin, err := hex.DecodeString(node.FlightCertSHA256)
	if err != nil {
		return flightRoute{}, invalidf("%s: registered Flight certificate pin %q is not hex: %v", node.Name, node.FlightCertSHA256, err)
	}
	cfg, err := newTLSPinConfig(pin)
	if err != nil {
		return flightRoute{}, invalidf("%s: registered Flight certificate pin %q: %v", node.Name, node.FlightCertSHA256, err)
	}
	return flightRoute{target: addr, opts: []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg.tls))},
		refused: cfg.refusal(node.Name, addr)}, nil
}

// tlsPinConfig is a certpin client configuration that remembers a
// handshake refused for a certificate other than the pinned one.
type tlsPinConfig struct {
	tls      *tls.Config
	mismatch atomic.Pointer[error]
}

func newTLSPinConfig(pin []byte) (*tlsPinConfig, error) {
	cfg, err := certpin.ClientConfig(pin)
	if err != nil {
		return nil, fmt.Errorf("pinned TLS: %w", err)
	}
	p := &tlsPinConfig{tls: cfg}
	verify := cfg.VerifyPeerCertificate
	cfg.VerifyPeerCertificate = func(rawCerts [][]byte, chains [][]*x509.Certificate) error {
		err := verify(rawCerts, chains)
		if errors.Is(err, certpin.ErrMismatch) {
			p.mismatch.Store(&err)
		}
		return err
	}
	return p, nil
}

// refusal returns err, or, when a handshake met a certificate other than
// the pinned one, a refusal for good that says so.
func (p *tlsPinConfig) refusal(node, addr string) func(error) error {
	return func(err error) error {
		if m := p.mismatch.Load(); m != nil && err != nil {
			return invalidf("%s: Flight server at %s refused: %v (the certificate it serves is not the one it registered)", node, addr, *m)
		}
		return err
	}
}
