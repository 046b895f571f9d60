package workers

import (
	"context"
	"fmt"
	"sync"
	"time"

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

// routeTTL is how long the gateway reuses a node's registry entry: the hub's
// ClickHouse opens a connection for every remote() of every query, and the
// entry (peer ID, addresses) changes only when the node registers again.
// Whether the peer is still enrolled is asked of the gater every time.
const routeTTL = 30 * time.Second

type route struct {
	ai      peer.AddrInfo
	expires time.Time
}

// gatewayRoutes routes a gateway connection to the node it names: a
// registered node whose peer the gater admits as enrolled under that name,
// so a revoked node is never read.
type gatewayRoutes struct {
	store clusterReader
	gater *p2p.Gater
	now   func() time.Time

	mu    sync.Mutex
	cache map[string]route
}

func newGatewayRoutes(st clusterReader, gater *p2p.Gater) *gatewayRoutes {
	return &gatewayRoutes{store: st, gater: gater, now: time.Now, cache: map[string]route{}}
}

// resolve is the gateway's p2p.CHResolver.
func (g *gatewayRoutes) resolve(ctx context.Context, node string) (peer.AddrInfo, error) {
	if !config.ValidName(node) {
		return peer.AddrInfo{}, fmt.Errorf("%.80q is not a node name", node)
	}
	ai, err := g.lookup(ctx, node)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	if name, ok := g.gater.Enrolled(ai.ID); !ok || name != node {
		return peer.AddrInfo{}, fmt.Errorf("node %s is not enrolled", node)
	}
	return ai, nil
}

// lookup returns node's peer and addresses from the cache or the registry.
func (g *gatewayRoutes) lookup(ctx context.Context, node string) (peer.AddrInfo, error) {
	now := g.now()
	g.mu.Lock()
	r, ok := g.cache[node]
	g.mu.Unlock()
	if ok && now.Before(r.expires) {
		return r.ai, nil
	}
	c, err := g.store.Cluster(ctx, node)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	id, err := peer.Decode(c.PeerID)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("registry holds bad peer ID %q for %s: %w", c.PeerID, node, err)
	}
	ai := peer.AddrInfo{ID: id}
	for _, a := range c.Addrs {
		if m, err := ma.NewMultiaddr(a); err == nil {
			ai.Addrs = append(ai.Addrs, m)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, r := range g.cache { // the fleet's names: a small map, swept on each miss
		if !now.Before(r.expires) {
			delete(g.cache, k)
		}
	}
	g.cache[node] = route{ai: ai, expires: now.Add(routeTTL)}
	return ai, nil
}
