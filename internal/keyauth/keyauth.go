// Package keyauth authenticates API keys for `syndb api` without a
// PostgreSQL write per request: what a key grants is cached in memory for a
// short TTL (keyed by the key's SHA-256), each key's last use is written in
// batches by a background flusher, and revocations and rotations reach the
// cache through PostgreSQL's LISTEN/NOTIFY at once, or at the latest when
// the entry's TTL ends. Expiry is checked on every request against the
// cached expiry.
package keyauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

// lookupTimeout bounds one PostgreSQL read of a key that the concurrent
// requests for it share (with the cache on).
const lookupTimeout = 10 * time.Second

// flushTimeout bounds one write of the keys' last uses.
const flushTimeout = 10 * time.Second

// Source is what the authenticator needs of PostgreSQL (*store.Store).
type Source interface {
	APIKeyGrant(ctx context.Context, hash [32]byte) (store.Grant, error)
	TouchAPIKeys(ctx context.Context, used map[int64]time.Time) error
	// Listen blocks until ctx ends, calling fn with each notification's
	// payload and onErr after each error, before it reconnects.
	Listen(ctx context.Context, channel string, fn func(payload string), onErr func(error))
}

// Authenticator authenticates API keys. New builds it, Start starts its
// listener and flusher, Close stops them and writes the last uses.
type Authenticator struct {
	src        Source
	log        *slog.Logger
	cache      *Cache // nil: every request reads PostgreSQL
	flushEvery time.Duration
	now        func() time.Time
	lookups    singleflight.Group

	mu   sync.Mutex
	used map[int64]time.Time

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New builds an authenticator over src with cfg's cache and flush interval.
func New(src Source, cfg config.Auth, log *slog.Logger) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Authenticator{src: src, log: log, flushEvery: cfg.LastUsedFlush, now: time.Now, used: map[int64]time.Time{}}
	if cfg.CacheTTL > 0 {
		c, err := NewCache(cfg.CacheSize, cfg.CacheTTL, func() time.Time { return a.now() })
		if err != nil {
			return nil, err
		}
		a.cache = c
	}
	return a, nil
}

// Start listens for key changes (when caching) and flushes last uses every
// flush interval, until Close.
func (a *Authenticator) Start(ctx context.Context) {
	ctx, a.stop = context.WithCancel(ctx)
	if a.cache != nil {
		a.wg.Go(func() { a.listen(ctx) })
	}
	a.wg.Go(func() { a.flushLoop(ctx) })
}

// Close stops the listener and the flusher, waits for them, and writes the
// last uses not yet written.
func (a *Authenticator) Close() error {
	if a.stop != nil {
		a.stop()
	}
	a.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	return a.flush(ctx)
}

// Authenticate returns the principal behind key: domain.ErrUnauthorized for
// a key that is unknown or revoked, domain.ErrKeyExpired for one past its
// expiry or its rotation's grace.
func (a *Authenticator) Authenticate(ctx context.Context, key string) (store.Principal, error) {
	hash, ok := store.HashKey(key)
	if !ok {
		return store.Principal{}, domain.ErrUnauthorized
	}
	if a.cache != nil {
		if g, found, hit := a.cache.Get(hash); hit {
			if !found {
				return store.Principal{}, domain.ErrUnauthorized
			}
			return a.admit(g)
		}
	}
	g, err := a.lookup(ctx, hash)
	if err != nil {
		return store.Principal{}, err
	}
	return a.admit(g)
}

// Forget drops the key id from this process's cache at once, for a
// revocation or rotation this process made: the next request with it reads
// PostgreSQL, without waiting for the notification.
func (a *Authenticator) Forget(id int64) {
	if a.cache != nil {
		a.cache.Forget(id)
	}
}

// lookup reads hash's grant from PostgreSQL. With the cache on, the
// requests that miss it at the same time share one read, whose answer is
// cached; with it off, every request reads.
func (a *Authenticator) lookup(ctx context.Context, hash [32]byte) (store.Grant, error) {
	if a.cache == nil {
		return a.read(ctx, hash)
	}
	v, err, _ := a.lookups.Do(string(hash[:]), func() (any, error) {
		gen := a.cache.Generation()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		g, err := a.read(ctx, hash)
		if err != nil {
			return store.Grant{}, err
		}
		a.cache.Fill(gen, hash, g, !g.Revoked)
		return g, nil
	})
	if err != nil {
		return store.Grant{}, err
	}
	return v.(store.Grant), nil //nolint:forcetypeassert // the function above returns only Grants
}

// read reads hash's grant from PostgreSQL; no key is a revoked grant.
func (a *Authenticator) read(ctx context.Context, hash [32]byte) (store.Grant, error) {
	g, err := a.src.APIKeyGrant(ctx, hash)
	switch {
	case errors.Is(err, domain.ErrUnauthorized):
		return store.Grant{Revoked: true}, nil
	case err != nil:
		return store.Grant{}, fmt.Errorf("authenticate: %w", err)
	case g.Revoked:
		return store.Grant{Revoked: true}, nil
	}
	return g, nil
}

// admit checks g now and records the key's use.
func (a *Authenticator) admit(g store.Grant) (store.Principal, error) {
	now := a.now()
	if err := g.Check(now); err != nil {
		return store.Principal{}, err
	}
	a.mu.Lock()
	a.used[g.KeyID] = now
	a.mu.Unlock()
	return g.Principal, nil
}

// listen drops each key that PostgreSQL announces revoked or rotated, and
// everything after the connection was lost (notifications may have been
// missed), until ctx ends.
func (a *Authenticator) listen(ctx context.Context) {
	a.src.Listen(ctx, store.APIKeyChannel, func(payload string) {
		id, err := strconv.ParseInt(payload, 10, 64)
		if err != nil {
			a.cache.Purge()
			return
		}
		a.cache.Forget(id)
	}, func(err error) {
		a.cache.Purge()
		a.log.Warn("api key notifications interrupted; key cache cleared", "err", err)
	})
}

func (a *Authenticator) flushLoop(ctx context.Context) {
	t := time.NewTicker(a.flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fctx, cancel := context.WithTimeout(ctx, flushTimeout)
		if err := a.flush(fctx); err != nil && ctx.Err() == nil {
			a.log.Warn("recording api key use failed; retrying at the next flush", "err", err)
		}
		cancel()
	}
}

// flush writes the last uses recorded since the previous flush; on failure
// they are kept for the next one.
func (a *Authenticator) flush(ctx context.Context) error {
	a.mu.Lock()
	batch := a.used
	a.used = make(map[int64]time.Time, len(batch))
	a.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := a.src.TouchAPIKeys(ctx, batch)
	if err == nil {
		return nil
	}
	a.mu.Lock()
	for id, at := range batch {
		if cur, ok := a.used[id]; !ok || cur.Before(at) {
			a.used[id] = at
		}
	}
	a.mu.Unlock()
	return err
}
