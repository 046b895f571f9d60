package workers

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/store"
)

// accessResync bounds how stale the hub's peer access can be when a
// notification is missed (and closes the enrollment window on expiry).
const accessResync = 15 * time.Second

// accessStore is what the access sync needs of PostgreSQL.
type accessStore interface {
	Access(ctx context.Context) (store.PeerAccess, error)
	Listen(ctx context.Context, channel string, fn func(payload string), onErr func(error))
}

// accessSync keeps the hub's connection gater in step with the registry:
// on every registry notification and every accessResync, it reloads who is
// enrolled or revoked and closes connections the gater no longer admits.
type accessSync struct {
	store accessStore
	gater *p2p.Gater
	host  host.Host
	// infra peers (bootstrap peers, relays) are always admitted.
	infra map[peer.ID]bool
	log   *slog.Logger
}

// load refreshes the gater once and drops peers it no longer admits.
func (a *accessSync) load(ctx context.Context) error {
	pa, err := a.store.Access(ctx)
	if err != nil {
		return err
	}
	acc := p2p.Access{Enrolled: map[peer.ID]string{}, Revoked: map[peer.ID]bool{}, Open: pa.Enrolling, Infra: a.infra}
	for id, name := range pa.Enrolled {
		p, err := peer.Decode(id)
		if err != nil {
			return fmt.Errorf("registry holds bad peer ID %q for %s: %w", id, name, err)
		}
		acc.Enrolled[p] = name
	}
	for id := range pa.Revoked {
		if p, err := peer.Decode(id); err == nil {
			acc.Revoked[p] = true
		}
	}
	a.gater.Set(acc)
	for _, p := range a.host.Network().Peers() {
		if !a.gater.Admits(p) {
			a.log.Info("closing connections of a peer no longer admitted", "peer", p)
			_ = a.host.Network().ClosePeer(p)
		}
	}
	return nil
}

// run reloads on notifications and periodically until ctx ends, and
// returns once its notification listener has returned too.
func (a *accessSync) run(ctx context.Context) {
	kick := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { a.listen(ctx, kick) })
	t := time.NewTicker(accessResync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-t.C:
		}
		if err := a.load(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("refresh peer access", "err", err)
		}
	}
}

// listen kicks on every registry notification until ctx ends.
func (a *accessSync) listen(ctx context.Context, kick chan<- struct{}) {
	a.store.Listen(ctx, store.ClusterChannel, func(name string) {
		a.log.Debug("registry changed", "cluster", name)
		select {
		case kick <- struct{}{}:
		default:
		}
	}, func(err error) { a.log.Warn("registry notifications interrupted; reconnecting", "err", err) })
}
