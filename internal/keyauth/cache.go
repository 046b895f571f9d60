package keyauth

import (
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/syndb/federation/internal/store"
)

// Cache remembers, by the SHA-256 of a key, what PostgreSQL said the key
// grants, each answer for a TTL from when it was read, in bounded LRUs:
// one for the keys that exist and one, smaller, for hashes that match no
// key (or a revoked one), so a flood of wrong keys cannot push the good
// ones out. It is safe for concurrent use.
type Cache struct {
	ttl     time.Duration
	now     func() time.Time
	valid   *lru.Cache[[32]byte, entry]
	unknown *lru.Cache[[32]byte, entry]

	// mu orders Fill against Forget and Purge, and gen counts those, so an
	// answer read before a key changed is never stored after the change
	// was applied.
	mu  sync.Mutex
	gen uint64
}

type entry struct {
	grant store.Grant
	until time.Time
}

// NewCache returns a cache of at most size keys (and size/16, at least 64,
// unknown hashes), each trusted for ttl; now is the clock.
func NewCache(size int, ttl time.Duration, now func() time.Time) (*Cache, error) {
	if size < 1 || ttl <= 0 {
		return nil, fmt.Errorf("key cache: size %d and ttl %s must be positive", size, ttl)
	}
	valid, err := lru.New[[32]byte, entry](size)
	if err != nil {
		return nil, fmt.Errorf("key cache: %w", err)
	}
	unknown, err := lru.New[[32]byte, entry](max(64, size/16))
	if err != nil {
		return nil, fmt.Errorf("key cache: %w", err)
	}
	return &Cache{ttl: ttl, now: now, valid: valid, unknown: unknown}, nil
}

// Get returns what hash grants. hit is false when the cache has no live
// answer; found is false when the answer is that no usable key has this
// hash.
func (c *Cache) Get(hash [32]byte) (g store.Grant, found, hit bool) {
	now := c.now()
	if e, ok := c.valid.Get(hash); ok && now.Before(e.until) {
		return e.grant, true, true
	}
	if e, ok := c.unknown.Get(hash); ok && now.Before(e.until) {
		return store.Grant{}, false, true
	}
	return store.Grant{}, false, false
}

// Generation is the ticket to take before reading a key from PostgreSQL,
// for Fill.
func (c *Cache) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// Fill stores what hash grants (found false: no usable key), read after
// Generation returned gen; it stores nothing when a key was forgotten or
// the cache purged since, as the answer may predate that change.
func (c *Cache) Fill(gen uint64, hash [32]byte, g store.Grant, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	e := entry{grant: g, until: c.now().Add(c.ttl)}
	if found {
		c.unknown.Remove(hash)
		c.valid.Add(hash, e)
		return
	}
	c.valid.Remove(hash)
	c.unknown.Add(hash, entry{until: e.until})
}

// Forget drops every entry of the key id.
func (c *Cache) Forget(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, h := range c.valid.Keys() {
		if e, ok := c.valid.Peek(h); ok && e.grant.KeyID == id {
			c.valid.Remove(h)
		}
	}
}

// Purge drops everything.
func (c *Cache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.valid.Purge()
	c.unknown.Purge()
}

// Len is the number of keys and of unknown hashes held, live or not.
func (c *Cache) Len() (keys, unknown int) { return c.valid.Len(), c.unknown.Len() }
