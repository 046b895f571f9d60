// Package p2p is the libp2p plumbing shared by the hub and the node agent:
// persistent identities, host construction, and the request/response
// protocols of the federation, one versioned protocol ID per message.
package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// HostConfig describes a libp2p host of the federation.
type HostConfig struct {
	Key    crypto.PrivKey
	Listen []string
}

// NewHost starts a libp2p host speaking QUIC-v1 (TLS 1.3) first and TCP with
// Noise as fallback. The caller closes it.
func NewHost(c HostConfig) (host.Host, error) {
	h, err := libp2p.New(
		libp2p.Identity(c.Key),
		libp2p.ListenAddrStrings(c.Listen...),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.DisableRelay(),
	)
	if err != nil {
		return nil, fmt.Errorf("start libp2p host on %v: %w", c.Listen, err)
	}
	return h, nil
}
