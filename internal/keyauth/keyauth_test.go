package keyauth

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

// fakeSource is PostgreSQL for the authenticator: keys by hash, the
// look-ups and writes it got, and a notification channel.
type fakeSource struct {
	mu       sync.Mutex
	grants   map[[32]byte]store.Grant
	lookups  int
	touches  []map[int64]time.Time
	failNext bool // the next TouchAPIKeys fails

	notes     chan string
	listening chan struct{} // closed once Listen runs
	listenErr chan error    // an error ends the current Listen round
}

func newFakeSource() *fakeSource {
	return &fakeSource{grants: map[[32]byte]store.Grant{}, notes: make(chan string), listening: make(chan struct{}),
		listenErr: make(chan error)}
}

func (f *fakeSource) add(key string, g store.Grant) {
	h, _ := store.HashKey(key)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.grants[h] = g
}

func (f *fakeSource) revoke(key string) {
	h, _ := store.HashKey(key)
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.grants[h]
	g.Revoked = true
	f.grants[h] = g
}

func (f *fakeSource) lookupCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}

func (f *fakeSource) touched() []map[int64]time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[int64]time.Time(nil), f.touches...)
}

func (f *fakeSource) APIKeyGrant(_ context.Context, hash [32]byte) (store.Grant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	g, ok := f.grants[hash]
	if !ok {
		return store.Grant{}, domain.ErrUnauthorized
	}
	return g, nil
}

func (f *fakeSource) TouchAPIKeys(_ context.Context, used map[int64]time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext {
		f.failNext = false
		return errors.New("postgres is down")
	}
	f.touches = append(f.touches, used)
	return nil
}

func (f *fakeSource) Listen(ctx context.Context, channel string, fn func(string), onErr func(error)) {
	if channel != store.APIKeyChannel {
		panic("listening on " + channel)
	}
	close(f.listening)
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-f.notes:
			fn(p)
		case err := <-f.listenErr:
			onErr(err)
		}
	}
}

func newAuth(t *testing.T, src *fakeSource, cfg config.Auth) (*Authenticator, *clock) {
	t.Helper()
	a, err := New(src, cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	clk := newClock()
	a.now = clk.Now
	return a, clk
}

var cached = config.Auth{CacheTTL: 2 * time.Second, CacheSize: 100, LastUsedFlush: time.Minute}

const key = "sdb_fakekey"

func TestCachedKeyIsReadOncePerTTL(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	src.add(key, grantOf(5))
	a, clk := newAuth(t, src, cached)
	for range 100 {
		p, err := a.Authenticate(t.Context(), key)
		require.NoError(t, err)
		require.Equal(t, int64(5), p.KeyID)
	}
	require.Equal(t, 1, src.lookupCount())
	clk.Advance(2 * time.Second)
	_, err := a.Authenticate(t.Context(), key)
	require.NoError(t, err)
	require.Equal(t, 2, src.lookupCount(), "read again once the TTL ended")

	// Wrong keys are remembered too, and strings that are no key are never looked up.
	for range 10 {
		require.ErrorIs(t, errOf(a.Authenticate(t.Context(), "sdb_wrong")), domain.ErrUnauthorized)
		require.ErrorIs(t, errOf(a.Authenticate(t.Context(), "Basic abc")), domain.ErrUnauthorized)
	}
	require.Equal(t, 3, src.lookupCount())
}

func TestCacheOffReadsEveryTime(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	src.add(key, grantOf(5))
	off := cached
	off.CacheTTL = 0
	a, _ := newAuth(t, src, off)
	for range 20 {
		_, err := a.Authenticate(t.Context(), key)
		require.NoError(t, err)
	}
	require.Equal(t, 20, src.lookupCount())
}

func TestExpiryIsCheckedOnEveryRequest(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	a, clk := newAuth(t, src, cached)
	g := grantOf(6)
	exp := clk.Now().Add(1500 * time.Millisecond)
	g.ExpiresAt = &exp
	src.add(key, g)
	_, err := a.Authenticate(t.Context(), key)
	require.NoError(t, err)
	clk.Advance(1499 * time.Millisecond)
	_, err = a.Authenticate(t.Context(), key)
	require.NoError(t, err)
	clk.Advance(time.Millisecond)
	_, err = a.Authenticate(t.Context(), key)
	require.ErrorIs(t, err, domain.ErrKeyExpired)
	require.ErrorIs(t, err, domain.ErrUnauthorized)
	require.Equal(t, 1, src.lookupCount(), "the cached expiry refused it, without a read")
}

func TestNotificationDropsARevokedKey(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	src.add(key, grantOf(7))
	other := "sdb_other"
	src.add(other, grantOf(8))
	a, _ := newAuth(t, src, cached)
	a.Start(t.Context())
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	<-src.listening
	for _, k := range []string{key, other} {
		_, err := a.Authenticate(t.Context(), k)
		require.NoError(t, err)
	}
	src.revoke(key)
	_, err := a.Authenticate(t.Context(), key)
	require.NoError(t, err, "still cached: no notification yet, and the clock stands still")
	src.notes <- strconv.Itoa(7)
	// The listener has handled the payload once it takes the next one.
	src.notes <- "0"
	_, err = a.Authenticate(t.Context(), key)
	require.ErrorIs(t, err, domain.ErrUnauthorized)
	before := src.lookupCount()
	_, err = a.Authenticate(t.Context(), other)
	require.NoError(t, err)
	require.Equal(t, before, src.lookupCount(), "the other key stays cached")

	// A lost connection clears the whole cache: notifications may have been missed.
	src.listenErr <- errors.New("connection reset")
	src.notes <- "0"
	_, err = a.Authenticate(t.Context(), other)
	require.NoError(t, err)
	require.Equal(t, before+1, src.lookupCount())
}

func TestLastUseIsWrittenInBatches(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	src.add(key, grantOf(1))
	src.add("sdb_two", grantOf(2))
	cfg := cached
	cfg.LastUsedFlush = 100 * time.Millisecond
	a, clk := newAuth(t, src, cfg)
	for range 50 {
		for _, k := range []string{key, "sdb_two"} {
			_, err := a.Authenticate(t.Context(), k)
			require.NoError(t, err)
		}
		clk.Advance(time.Millisecond)
	}
	last := clk.Now().Add(-time.Millisecond)
	a.Start(t.Context())
	require.Eventually(t, func() bool { return len(src.touched()) > 0 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []map[int64]time.Time{{1: last, 2: last}}, src.touched(), "100 uses, one write")

	require.NoError(t, a.Close())
	require.Len(t, src.touched(), 1, "nothing was left to write")
}

func TestFailedWriteIsKeptAndCloseWritesTheRest(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	src.add(key, grantOf(1))
	src.add("sdb_two", grantOf(2))
	a, clk := newAuth(t, src, cached)
	_, err := a.Authenticate(t.Context(), key)
	require.NoError(t, err)
	first := clk.Now()
	src.failNext = true
	require.Error(t, a.flush(t.Context()))
	clk.Advance(time.Second)
	_, err = a.Authenticate(t.Context(), "sdb_two")
	require.NoError(t, err)
	require.NoError(t, a.Close())
	require.Equal(t, []map[int64]time.Time{{1: first, 2: first.Add(time.Second)}}, src.touched())
	require.NoError(t, a.Close(), "closing twice is harmless")
	require.Len(t, src.touched(), 1)
}

func TestBadSettingsAreRefused(t *testing.T) {
	t.Parallel()
	_, err := New(newFakeSource(), config.Auth{CacheTTL: time.Minute, CacheSize: 10, LastUsedFlush: time.Second}, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "SYNDB_AUTH_CACHE_TTL")
}

func errOf(_ store.Principal, err error) error { return err }

func TestForgetDropsAKeyAtOnce(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	src.add(key, grantOf(9))
	a, _ := newAuth(t, src, cached)
	_, err := a.Authenticate(t.Context(), key)
	require.NoError(t, err)
	src.revoke(key)
	a.Forget(9)
	_, err = a.Authenticate(t.Context(), key)
	require.ErrorIs(t, err, domain.ErrUnauthorized)
	require.Equal(t, 2, src.lookupCount())
	off := cached
	off.CacheTTL = 0
	b, _ := newAuth(t, src, off)
	b.Forget(9) // nothing cached: nothing to do
}
