// Package registry keeps an in-memory snapshot of the cluster registry for
// the hub's readers. PostgreSQL is the source of truth: a Registry loads the
// clusters table, serves it as an immutable Snapshot behind an atomic
// pointer (reads never lock), and reloads it copy-on-write when the table
// changes (store.RegistryChannel) and periodically as a safety net.
package registry

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

// Snapshot is an immutable view of the registry at one moment. Never modify
// it, nor anything it returns: it is shared by every reader.
type Snapshot struct {
	// Loaded is when the load that produced this snapshot began; the data is
	// at least that fresh.
	Loaded time.Time
	// Version numbers the snapshots of one Registry: 1 for the first load,
	// then one more for every successful refresh.
	Version uint64

	clusters []domain.Cluster // sorted by name
	byName   map[string]int   // name → index in clusters
}

// newSnapshot builds a snapshot from a load. It copies the clusters (so the
// snapshot shares no memory with the loader) and sorts them by name.
func newSnapshot(loaded []domain.Cluster, version uint64, at time.Time) *Snapshot {
	clusters := make([]domain.Cluster, len(loaded))
	for i, c := range loaded {
		clusters[i] = cloneCluster(c)
	}
	slices.SortStableFunc(clusters, func(a, b domain.Cluster) int { return strings.Compare(a.Name, b.Name) })
	byName := make(map[string]int, len(clusters))
	for i, c := range clusters {
		byName[c.Name] = i
	}
	return &Snapshot{Loaded: at, Version: version, clusters: clusters, byName: byName}
}

// cloneCluster copies c deeply enough that it shares no mutable memory with
// the original.
func cloneCluster(c domain.Cluster) domain.Cluster {
	c.Addrs = slices.Clone(c.Addrs)
	if c.Drift != nil {
		d := *c.Drift
		c.Drift = &d
	}
	return c
}

// All returns every cluster, revoked ones included, sorted by name. The
// slice and the clusters in it belong to the snapshot: callers must not
// modify them (copy first).
func (s *Snapshot) All() []domain.Cluster {
	return s.clusters
}

// Get returns the cluster with the given name. Its Addrs and Drift are shared
// with the snapshot: callers must not modify them.
func (s *Snapshot) Get(name string) (domain.Cluster, bool) {
	i, ok := s.byName[name]
	if !ok {
		return domain.Cluster{}, false
	}
	return s.clusters[i], true
}

// Len returns the number of clusters in the snapshot.
func (s *Snapshot) Len() int {
	return len(s.clusters)
}

// Loader loads the registry from its source of truth (*store.Store).
type Loader interface {
	Clusters(ctx context.Context, activeOnly bool) ([]domain.Cluster, error)
}

// Notifier delivers change notifications (*store.Store): Listen blocks until
// ctx ends, calling fn for every notification on channel and onErr when the
// subscription breaks (it reconnects by itself).
type Notifier interface {
	Listen(ctx context.Context, channel string, fn func(payload string), onErr func(error))
}

// Registry serves the latest Snapshot to any number of readers without
// locks. Refreshes build a new snapshot and swap it in (copy-on-write); they
// are serialised, so versions only go up and a slow load never overwrites a
// newer one.
type Registry struct {
	loader Loader
	log    *slog.Logger
	cur    atomic.Pointer[Snapshot]
	// sem holds the right to refresh (a one-slot semaphore that, unlike a
	// mutex, can be waited for with a context).
	sem chan struct{}
}

// New loads the registry once and returns a Registry serving it, or the
// error of that first load. A nil log discards log records.
func New(ctx context.Context, l Loader, log *slog.Logger) (*Registry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{loader: l, log: log, sem: make(chan struct{}, 1)}
	s, err := r.load(ctx, 1)
	if err != nil {
		return nil, err
	}
	r.cur.Store(s)
	return r, nil
}

// Snapshot returns the latest snapshot; it is never nil. It does not lock,
// and the snapshot it returns never changes: call it again for newer data.
func (r *Registry) Snapshot() *Snapshot {
	return r.cur.Load()
}

// Refresh loads the registry now and swaps the new snapshot in. It waits for
// a refresh already in progress to finish first. If the load fails, the
// previous snapshot stays and the error is returned.
func (r *Registry) Refresh(ctx context.Context) error {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("refresh registry: %w", context.Cause(ctx))
	}
	defer func() { <-r.sem }()
	s, err := r.load(ctx, r.cur.Load().Version+1)
	if err != nil {
		return err
	}
	r.cur.Store(s)
	r.log.Debug("registry refreshed", "version", s.Version, "clusters", s.Len())
	return nil
}

// load reads every cluster, revoked ones included (the API lists them too).
func (r *Registry) load(ctx context.Context, version uint64) (*Snapshot, error) {
	at := time.Now()
	clusters, err := r.loader.Clusters(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("load registry: %w", err)
	}
	return newSnapshot(clusters, version, at), nil
}

// Run keeps the registry fresh until ctx ends, and returns when its
// goroutines are gone. It refreshes on every notification on
// store.RegistryChannel, coalescing bursts (at most one reload in flight and
// one more queued, which sees every change announced before it starts), and
// every resync interval as a safety net for missed notifications (including
// changes made before the listener is established); resync <= 0 turns the
// safety net off. A failed reload keeps the previous snapshot and logs a
// warning.
func (r *Registry) Run(ctx context.Context, n Notifier, resync time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // runs before wg.Wait: ends the listener, then waits for it

	kick := make(chan struct{}, 1)
	wg.Go(func() {
		n.Listen(ctx, store.RegistryChannel, func(payload string) {
			r.log.Debug("registry change announced", "payload", payload)
			select {
			case kick <- struct{}{}:
			default: // a reload is already queued; it will see this change
			}
		}, func(err error) {
			r.log.Warn("registry notifications interrupted; reconnecting", "err", err)
		})
		if ctx.Err() == nil {
			r.log.Warn("registry notifications stopped before shutdown", "resync", resync)
		}
	})

	var tick <-chan time.Time
	if resync > 0 {
		ticker := time.NewTicker(resync)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-tick:
		}
		if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("registry refresh failed; keeping the previous snapshot",
				"err", err, "version", r.Snapshot().Version)
		}
	}
}
