package workers

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
)

// clusterReader is what the gateway's resolver needs of the registry.
type clusterReader interface {
	Cluster(ctx context.Context, name string) (domain.Cluster, error)
}

// gatewayResolver routes a gateway connection to the node it names: a
// registered node whose peer the gater admits as enrolled under that name
// (so a revoked node is never read).
func gatewayResolver(st clusterReader, gater *p2p.Gater) p2p.CHResolver {
	return func(ctx context.Context, node string) (peer.AddrInfo, error) {
		if !config.ValidName(node) {
			return peer.AddrInfo{}, fmt.Errorf("%.80q is not a node name", node)
		}
		c, err := st.Cluster(ctx, node)
		if err != nil {
			return peer.AddrInfo{}, err
		}
		id, err := peer.Decode(c.PeerID)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("registry holds bad peer ID %q for %s: %w", c.PeerID, node, err)
		}
		if name, ok := gater.Enrolled(id); !ok || name != node {
			return peer.AddrInfo{}, fmt.Errorf("node %s is not enrolled", node)
		}
		ai := peer.AddrInfo{ID: id}
		for _, a := range c.Addrs {
			if m, err := ma.NewMultiaddr(a); err == nil {
				ai.Addrs = append(ai.Addrs, m)
			}
		}
		return ai, nil
	}
}
