package p2p

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"
)

// PeerFinder looks up a peer's current addresses (the DHT).
type PeerFinder interface {
	FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error)
}

// Client calls peers by ID and known addresses from a host. When a peer
// cannot be reached at the addresses it registered, the client looks up
// its current ones with the finder, when it has one, and tries once more.
type Client struct {
	h       host.Host
	finder  PeerFinder
	punches *Punches
}

// NewClient returns a Client that dials from h; finder may be nil.
func NewClient(h host.Host, finder PeerFinder) *Client { return &Client{h: h, finder: finder} }

// WithPunches makes Path tell hole-punched connections from direct ones by
// the punches h's hole punching recorded; it returns c.
func (c *Client) WithPunches(p *Punches) *Client {
	c.punches = p
	return c
}

// Route is the path and the transport of the client's connection to
// peerID now (RouteTo): one of PathDirect, PathHolePunched and
// PathRelayed, and "quic-v1" or "tcp"; both "" when not connected.
func (c *Client) Route(peerID string) (path, transport string) {
	id, err := peer.Decode(peerID)
	if err != nil {
		return "", ""
	}
	return RouteTo(c.h, id, c.punches)
}

// Call learns addrs for peerID (when given) and makes a request/response call.
func (c *Client) Call(ctx context.Context, peerID string, addrs []string, spec Spec, req, resp proto.Message) error {
	id, err := c.learn(peerID, addrs)
	if err != nil {
		return err
	}
	err = Call(ctx, c.h, id, spec, req, resp)
	if !errors.Is(err, ErrUnreachable) || c.finder == nil || ctx.Err() != nil {
		return err
	}
	ai, ferr := c.finder.FindPeer(ctx, id)
	if ferr != nil {
		return fmt.Errorf("%w (and %w)", err, ferr)
	}
	c.h.Peerstore().AddAddrs(id, ai.Addrs, peerstore.AddressTTL)
	return Call(ctx, c.h, id, spec, req, resp)
}

// learn decodes peerID and adds addrs to the peerstore as its addresses.
func (c *Client) learn(peerID string, addrs []string) (peer.ID, error) {
	id, err := peer.Decode(peerID)
	if err != nil {
		return "", fmt.Errorf("bad peer ID %q: %w", peerID, err)
	}
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return "", fmt.Errorf("bad multiaddr %q of %s: %w", a, id, err)
		}
		c.h.Peerstore().AddAddr(id, m, peerstore.AddressTTL)
	}
	return id, nil
}
