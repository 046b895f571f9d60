package keyauth

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/store"
)

// clock is a settable clock for the tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func hashOf(i int) [32]byte { return sha256.Sum256(fmt.Appendf(nil, "key-%d", i)) }

func grantOf(id int64) store.Grant {
	return store.Grant{Principal: store.Principal{KeyID: id, KeyName: fmt.Sprint("k", id), Account: "a", Role: store.RoleReader}}
}

func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	clk := newClock()
	c, err := NewCache(100, time.Minute, clk.Now)
	require.NoError(t, err)
	for i := range 250 {
		c.Fill(c.Generation(), hashOf(i), grantOf(int64(i)), true)
	}
	keys, _ := c.Len()
	require.Equal(t, 100, keys)
	// The least recently used went first: keys 0..149 are gone, 150..249 held.
	for i := range 250 {
		g, found, hit := c.Get(hashOf(i))
		require.Equal(t, i >= 150, hit, i)
		if hit {
			require.True(t, found)
			require.Equal(t, int64(i), g.KeyID)
		}
	}
	// Unknown hashes have their own, smaller, bound: they push no key out.
	for i := 1000; i < 2000; i++ {
		c.Fill(c.Generation(), hashOf(i), store.Grant{}, false)
	}
	keys, unknown := c.Len()
	require.Equal(t, 100, keys)
	require.Equal(t, 64, unknown, "max(64, 100/16)")
	_, found, hit := c.Get(hashOf(1999))
	require.True(t, hit)
	require.False(t, found)
	_, _, hit = c.Get(hashOf(1000))
	require.False(t, hit, "the oldest unknown hash was dropped")
}

func TestCacheEntriesEndAfterTTL(t *testing.T) {
	t.Parallel()
	clk := newClock()
	c, err := NewCache(10, 2*time.Second, clk.Now)
	require.NoError(t, err)
	c.Fill(c.Generation(), hashOf(1), grantOf(1), true)
	c.Fill(c.Generation(), hashOf(2), store.Grant{}, false)
	clk.Advance(1999 * time.Millisecond)
	_, found, hit := c.Get(hashOf(1))
	require.True(t, hit && found)
	_, found, hit = c.Get(hashOf(2))
	require.True(t, hit)
	require.False(t, found)
	clk.Advance(time.Millisecond)
	_, _, hit = c.Get(hashOf(1))
	require.False(t, hit, "at the TTL the key must be read again")
	_, _, hit = c.Get(hashOf(2))
	require.False(t, hit)
	// A read refills it for another TTL from then; using it does not extend it.
	c.Fill(c.Generation(), hashOf(1), grantOf(1), true)
	for i, want := range []bool{true, true, false} { // 0.9 s, 1.8 s, 2.7 s after the read
		clk.Advance(900 * time.Millisecond)
		_, _, hit = c.Get(hashOf(1))
		require.Equal(t, want, hit, i)
	}
}

func TestCacheForgetAndPurge(t *testing.T) {
	t.Parallel()
	clk := newClock()
	c, err := NewCache(10, time.Minute, clk.Now)
	require.NoError(t, err)
	for i := range 4 {
		c.Fill(c.Generation(), hashOf(i), grantOf(int64(i%2)), true)
	}
	c.Forget(1)
	for i := range 4 {
		_, _, hit := c.Get(hashOf(i))
		require.Equal(t, i%2 == 0, hit, "only key 1's entries are dropped: %d", i)
	}
	// An answer read before a Forget is not stored after it.
	gen := c.Generation()
	c.Forget(7)
	c.Fill(gen, hashOf(9), grantOf(7), true)
	_, _, hit := c.Get(hashOf(9))
	require.False(t, hit, "a stale answer must not outlive the revocation it raced")
	c.Fill(c.Generation(), hashOf(9), grantOf(7), true)
	_, _, hit = c.Get(hashOf(9))
	require.True(t, hit)
	c.Purge()
	keys, unknown := c.Len()
	require.Zero(t, keys+unknown)
	_, err = NewCache(0, time.Second, clk.Now)
	require.Error(t, err)
}
