package p2p

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"
)

// Client calls peers by ID and known addresses from a host.
type Client struct {
	h host.Host
}

// NewClient returns a Client that dials from h.
func NewClient(h host.Host) *Client { return &Client{h: h} }

// Call learns addrs for peerID (when given) and makes a request/response call.
func (c *Client) Call(ctx context.Context, peerID string, addrs []string, spec Spec, req, resp proto.Message) error {
	id, err := peer.Decode(peerID)
	if err != nil {
		return fmt.Errorf("bad peer ID %q: %w", peerID, err)
	}
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return fmt.Errorf("bad multiaddr %q of %s: %w", a, id, err)
		}
		c.h.Peerstore().AddAddr(id, m, peerstore.AddressTTL)
	}
	return Call(ctx, c.h, id, spec, req, resp)
}
