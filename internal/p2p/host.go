// Package p2p is the libp2p plumbing shared by the hub and the node agent:
// persistent identities, host construction, and the request/response
// protocols of the federation, one versioned protocol ID per message.
package p2p

import (
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// HostConfig describes a libp2p host of the federation.
type HostConfig struct {
	Key    crypto.PrivKey
	Listen []string
	// Gater, when set, decides which peers may connect.
	Gater connmgr.ConnectionGater
	// PSK, when set, makes the host part of a private network: only peers
	// with the same 32-byte key can connect. libp2p private networks run
	// over TCP only, so QUIC listen addresses are dropped.
	PSK []byte
}

// NewHost starts a libp2p host speaking QUIC-v1 (TLS 1.3) first and TCP with
// Noise as fallback. The caller closes it.
func NewHost(c HostConfig) (host.Host, error) {
	opts := []libp2p.Option{
		libp2p.Identity(c.Key),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.DisableRelay(),
	}
	listen := c.Listen
	if len(c.PSK) > 0 {
		if len(c.PSK) != 32 {
			return nil, fmt.Errorf("private network key must be 32 bytes, got %d", len(c.PSK))
		}
		opts = append(opts, libp2p.PrivateNetwork(pnet.PSK(c.PSK)))
		listen = nil
		for _, a := range c.Listen {
			if !strings.Contains(a, "/quic") {
				listen = append(listen, a)
			}
		}
		if len(listen) == 0 {
			return nil, fmt.Errorf("a private network needs a TCP listen address; got only %v", c.Listen)
		}
	} else {
		opts = append(opts, libp2p.Transport(libp2pquic.NewTransport))
	}
	opts = append(opts, libp2p.ListenAddrStrings(listen...))
	if c.Gater != nil {
		opts = append(opts, libp2p.ConnectionGater(c.Gater))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("start libp2p host on %v: %w", c.Listen, err)
	}
	return h, nil
}
