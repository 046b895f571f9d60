// Package certpin serves and dials TLS pinned to one self-signed
// certificate: a node's Flight listener serves a certificate and key from
// files, registers the certificate's SHA-256 with the hub over libp2p (a
// channel already authenticated by the node's peer ID), and the hub accepts
// on that TCP address only the certificate whose SHA-256 it holds. No CA
// and no host name are involved: the pin is the whole trust.
package certpin

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// ErrMismatch is the refusal of a peer whose certificate is not the pinned one.
var ErrMismatch = errors.New("TLS certificate does not match its pin")

// Fingerprint is the SHA-256 of a DER certificate: its pin.
func Fingerprint(der []byte) []byte {
	sum := sha256.Sum256(der)
	return sum[:]
}

// Load reads a PEM certificate and key (the first certificate in certFile is
// the one served) and returns them with the certificate's pin.
func Load(certFile, keyFile string) (tls.Certificate, []byte, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return cert, Fingerprint(cert.Certificate[0]), nil
}

// ServerConfig serves cert over TLS 1.3 and offers HTTP/2 by ALPN, which
// gRPC clients require of a server: it wraps a listener that a gRPC server
// without transport credentials of its own serves.
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}}
}

// ClientConfig dials TLS 1.3 to a server that must present exactly the
// certificate whose SHA-256 is pin; any other is refused with ErrMismatch.
// The chain and host name are not checked (the certificate is
// self-signed): the pin stands for both.
func ClientConfig(pin []byte) (*tls.Config, error) {
	if len(pin) != sha256.Size {
		return nil, fmt.Errorf("a certificate pin is a SHA-256 of %d bytes, not %d", sha256.Size, len(pin))
	}
	want := bytes.Clone(pin)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The pin replaces chain and name verification; it is checked in
		// VerifyPeerCertificate, on every handshake.
		InsecureSkipVerify: true, //nolint:gosec // verified against the pin below
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			if len(rawCerts) == 0 {
				return fmt.Errorf("%w: the server presented no certificate", ErrMismatch)
			}
			if got := Fingerprint(rawCerts[0]); !bytes.Equal(got, want) {
				return fmt.Errorf("%w: the server's certificate has SHA-256 %s, the pinned one %s",
					ErrMismatch, hex.EncodeToString(got), hex.EncodeToString(want))
			}
			return nil
		},
	}, nil
}

// SelfSigned makes a self-signed ECDSA P-256 certificate for hosts (IP
// addresses or DNS names) valid for lifetime, and returns the certificate
// and its key PEM-encoded.
func SelfSigned(hosts []string, lifetime time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ECDSA key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "syndb self-signed"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// WriteSelfSigned writes a SelfSigned certificate and key to certFile and
// keyFile (the key readable by its owner only).
func WriteSelfSigned(certFile, keyFile string, hosts []string, lifetime time.Duration) error {
	certPEM, keyPEM, err := SelfSigned(hosts, lifetime)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return fmt.Errorf("write TLS key: %w", err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil { //nolint:gosec // a certificate is public
		return fmt.Errorf("write TLS certificate: %w", err)
	}
	return nil
}
