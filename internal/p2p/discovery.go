package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
)

// Names of the federation in discovery.
const (
	// DHTPrefix makes the federation's Kademlia DHT private: its protocol is
	// /syndb/kad/1.0.0, so it never mixes with the public IPFS DHT.
	DHTPrefix = "/syndb"
	// HubNamespace is what the hub advertises in the DHT.
	HubNamespace = "syndb-hub"
	// MDNSService is the mDNS service name every federation process uses.
	MDNSService = "syndb"
)

// ClusterNamespace is what a node advertises in the DHT.
func ClusterNamespace(name string) string { return "syndb-cluster:" + name }

// DiscoveryConfig says how a host finds peers.
type DiscoveryConfig struct {
	// Bootstrap peers of the DHT; without them (and without Server) there is
	// no DHT.
	Bootstrap []peer.AddrInfo
	// Server runs the DHT in server mode (the hub and relays); nodes are
	// clients: they look up and advertise but store no records.
	Server bool
	// MDNS announces the host on the LAN and reports peers found there.
	MDNS bool
	// RoutingFilter, when set, keeps the peers it refuses out of the DHT's
	// routing table: the hub never queries or refers others to them.
	RoutingFilter func(peer.ID) bool
}

// Discovery finds peers through the federation DHT and mDNS.
type Discovery struct {
	h    host.Host
	log  *slog.Logger
	dht  *dht.IpfsDHT
	rd   *drouting.RoutingDiscovery
	mdns mdns.Service

	mu      sync.Mutex
	lan     map[peer.ID]peer.AddrInfo
	cancels []context.CancelFunc // of the goroutines below, called by Close
	wg      sync.WaitGroup
}

// owned returns a context that ends with ctx or at Close, whichever is first.
func (d *Discovery) owned(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	d.mu.Lock()
	d.cancels = append(d.cancels, cancel)
	d.mu.Unlock()
	return ctx
}

// StartDiscovery starts the DHT (when there are bootstrap peers or the host
// is a server) and mDNS (when asked). Close stops them.
func StartDiscovery(ctx context.Context, h host.Host, c DiscoveryConfig, log *slog.Logger) (*Discovery, error) {
	d := &Discovery{h: h, log: log, lan: map[peer.ID]peer.AddrInfo{}}
	if len(c.Bootstrap) > 0 || c.Server {
		mode := dht.ModeClient
		if c.Server {
			mode = dht.ModeServer
		}
		opts := []dht.Option{dht.ProtocolPrefix(DHTPrefix), dht.Mode(mode), dht.BootstrapPeers(c.Bootstrap...)}
		if c.RoutingFilter != nil {
			opts = append(opts, dht.RoutingTableFilter(func(_ any, p peer.ID) bool { return c.RoutingFilter(p) }))
		}
		kad, err := dht.New(h, opts...)
		if err != nil {
			return nil, fmt.Errorf("start DHT: %w", err)
		}
		d.dht, d.rd = kad, drouting.NewRoutingDiscovery(kad)
		ctx := d.owned(ctx)
		for _, b := range c.Bootstrap {
			if b.ID == h.ID() {
				continue
			}
			d.wg.Go(func() { d.connect(ctx, b) })
		}
	}
	if c.MDNS {
		d.mdns = mdns.NewMdnsService(h, MDNSService, d)
		if err := d.mdns.Start(); err != nil {
			_ = d.Close()
			return nil, fmt.Errorf("start mDNS: %w", err)
		}
	}
	return d, nil
}

// connect keeps trying a bootstrap peer until connected or ctx ends.
func (d *Discovery) connect(ctx context.Context, b peer.AddrInfo) {
	delay := 250 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := d.h.Connect(cctx, b)
		cancel()
		if err == nil {
			d.log.Debug("connected to bootstrap peer", "peer", b.ID)
			if err := d.dht.Bootstrap(ctx); err != nil {
				d.log.Warn("DHT bootstrap", "err", err)
			}
			return
		}
		d.log.Warn("bootstrap peer unreachable; retrying", "peer", b.ID, "retry_in", delay, "err", err)
		if !sleep(ctx, delay) {
			return
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// HandlePeerFound records a peer mDNS found on the LAN.
func (d *Discovery) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == d.h.ID() {
		return
	}
	d.mu.Lock()
	_, known := d.lan[ai.ID]
	d.lan[ai.ID] = ai
	d.mu.Unlock()
	if !known {
		d.log.Info("peer found on the LAN", "peer", ai.ID, "addrs", ai.Addrs)
	}
}

// LAN returns the peers mDNS found so far.
func (d *Discovery) LAN() []peer.AddrInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]peer.AddrInfo, 0, len(d.lan))
	for _, ai := range d.lan {
		out = append(out, ai)
	}
	return out
}

// HasDHT reports whether the DHT runs.
func (d *Discovery) HasDHT() bool { return d.dht != nil }

// Advertise keeps ns advertised in the DHT until ctx ends: once the routing
// table has a peer, then again before each advertisement expires.
func (d *Discovery) Advertise(ctx context.Context, ns string) {
	if d.rd == nil {
		return
	}
	ctx = d.owned(ctx)
	d.wg.Go(func() {
		delay := 250 * time.Millisecond
		for ctx.Err() == nil {
			if d.dht.RoutingTable().Size() == 0 {
				if !sleep(ctx, delay) {
					return
				}
				delay = min(2*delay, 5*time.Second)
				continue
			}
			ttl, err := d.rd.Advertise(ctx, ns)
			if err != nil {
				d.log.Warn("DHT advertisement failed; retrying", "namespace", ns, "retry_in", delay, "err", err)
				if !sleep(ctx, delay) {
					return
				}
				delay = min(2*delay, 30*time.Second)
				continue
			}
			d.log.Info("advertised in the DHT", "namespace", ns, "ttl", ttl)
			delay = 250 * time.Millisecond
			if !sleep(ctx, ttl*7/8) {
				return
			}
		}
	})
}

// FindProviders returns the peers advertising ns (without this host).
func (d *Discovery) FindProviders(ctx context.Context, ns string) ([]peer.AddrInfo, error) {
	if d.rd == nil {
		return nil, errors.New("no DHT: configure bootstrap peers")
	}
	ch, err := d.rd.FindPeers(ctx, ns)
	if err != nil {
		return nil, fmt.Errorf("find %s in the DHT: %w", ns, err)
	}
	var out []peer.AddrInfo
	for ai := range ch {
		if ai.ID != d.h.ID() {
			out = append(out, ai)
		}
	}
	return out, nil
}

// FindPeer looks up a peer's addresses in the DHT.
func (d *Discovery) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	if d.dht == nil {
		return peer.AddrInfo{}, errors.New("no DHT: configure bootstrap peers")
	}
	ai, err := d.dht.FindPeer(ctx, id)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("find peer %s in the DHT: %w", id, err)
	}
	return ai, nil
}

// Close stops the DHT, mDNS and the goroutines bootstrapping and
// advertising, and returns once they are gone.
func (d *Discovery) Close() error {
	d.mu.Lock()
	for _, cancel := range d.cancels {
		cancel()
	}
	d.mu.Unlock()
	var errs []error
	if d.mdns != nil {
		errs = append(errs, d.mdns.Close())
	}
	if d.dht != nil {
		errs = append(errs, d.dht.Close())
	}
	d.wg.Wait()
	return errors.Join(errs...)
}

// KeepReservations holds a slot on each relay until ctx ends, renewing it
// before it expires and retrying with backoff while a relay is away, so the
// host stays reachable at its relayed addresses.
func KeepReservations(ctx context.Context, h host.Host, relays []peer.AddrInfo, log *slog.Logger) {
	var wg sync.WaitGroup
	for _, r := range relays {
		wg.Go(func() {
			delay := 250 * time.Millisecond
			for ctx.Err() == nil {
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				rsvp, err := client.Reserve(rctx, h, r)
				cancel()
				if err != nil {
					log.Warn("relay reservation failed; retrying", "relay", r.ID, "retry_in", delay, "err", err)
					if !sleep(ctx, delay) {
						return
					}
					delay = min(2*delay, 30*time.Second)
					continue
				}
				delay = 250 * time.Millisecond
				log.Info("relay slot reserved", "relay", r.ID, "expires", rsvp.Expiration,
					"limit_duration", rsvp.LimitDuration, "limit_data", rsvp.LimitData)
				renew := time.Until(rsvp.Expiration) - time.Minute
				if !sleep(ctx, max(renew, 10*time.Second)) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// sleep waits d or until ctx ends, reporting whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
