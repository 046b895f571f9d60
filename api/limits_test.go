package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/registry"
	"github.com/syndb/federation/internal/store"
)

// TestKeyRate: a key's bucket lets its burst through at once, then one
// request per 1/rate; a refused request takes no token and says how long
// to wait; another key has its own bucket.
func TestKeyRate(t *testing.T) {
	t.Parallel()
	l := newKeyLimits(config.Limits{KeyRate: 2, KeyBurst: 3, KeyMaxQueries: 1})
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		_, ok := l.allow(1, t0)
		require.True(t, ok, "request %d of the burst", i)
	}
	for range 3 {
		wait, ok := l.allow(1, t0)
		require.False(t, ok)
		require.Equal(t, 500*time.Millisecond, wait, "2 a second: the next token in 500 ms, however often refused")
		require.Equal(t, 1, retryAfter(wait))
	}
	_, ok := l.allow(2, t0)
	require.True(t, ok, "another key's bucket is full")
	_, ok = l.allow(1, t0.Add(499*time.Millisecond))
	require.False(t, ok)
	_, ok = l.allow(1, t0.Add(500*time.Millisecond))
	require.True(t, ok, "the token came back")
	wait, ok := l.allow(1, t0.Add(500*time.Millisecond))
	require.False(t, ok)
	require.Equal(t, 500*time.Millisecond, wait)
	require.Equal(t, 3, retryAfter(2001*time.Millisecond), "Retry-After rounds up")

	off := newKeyLimits(config.Limits{})
	for range 100 {
		_, ok := off.allow(1, t0)
		require.True(t, ok, "a zero rate limits nothing")
	}
}

// TestKeyBucketsBounded: the table keeps at most maxBuckets buckets; when
// full it forgets the buckets that refilled (the same as new ones), and
// only then any bucket.
func TestKeyBucketsBounded(t *testing.T) {
	t.Parallel()
	l := newKeyLimits(config.Limits{KeyRate: 1, KeyBurst: 2})
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for k := range int64(maxBuckets) {
		_, ok := l.allow(k, t0)
		require.True(t, ok)
	}
	require.Len(t, l.buckets.table, maxBuckets)
	_, ok := l.allow(maxBuckets, t0)
	require.True(t, ok)
	require.Len(t, l.buckets.table, maxBuckets, "full of buckets in use: one is forgotten for the new one")
	// Two seconds later every bucket refilled: the next new key clears them.
	_, ok = l.allow(maxBuckets+1, t0.Add(2*time.Second))
	require.True(t, ok)
	require.Len(t, l.buckets.table, 1)
}

// TestKeyQueriesAtOnce: a key runs at most its most queries at once; a
// release counts once however often called; keys count apart.
func TestKeyQueriesAtOnce(t *testing.T) {
	t.Parallel()
	l := newKeyLimits(config.Limits{KeyRate: 1, KeyBurst: 1, KeyMaxQueries: 2})
	r1, ok := l.startQuery(1)
	require.True(t, ok)
	_, ok = l.startQuery(1)
	require.True(t, ok)
	_, ok = l.startQuery(1)
	require.False(t, ok, "a third query at once")
	_, ok = l.startQuery(2)
	require.True(t, ok, "another key counts apart")
	r1()
	r1()
	r3, ok := l.startQuery(1)
	require.True(t, ok, "a query ended")
	_, ok = l.startQuery(1)
	require.False(t, ok, "the second release of one query freed nothing")
	r3()
	require.Equal(t, 1, l.running[1])
}

// zeroLimits turns the per-key limits off.
var zeroLimits = config.Limits{}

// limitedServer is the API with limits on the in-memory store.
func limitedServer(t *testing.T, lim config.Limits) (*Server, *httptest.Server) {
	t.Helper()
	reg, err := registry.New(t.Context(), fakeStore{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	s := New(config.API{PublicURL: "http://hub", Limits: lim}, Deps{Store: fakeStore{}, Registry: reg, Log: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv
}

// TestRateLimitedRoute: over its burst a key gets a 429 with Retry-After
// and the rate_limited JSON error; another key, and the public routes, do
// not.
func TestRateLimitedRoute(t *testing.T) {
	t.Parallel()
	_, srv := limitedServer(t, config.Limits{KeyRate: 0.5, KeyBurst: 2, KeyMaxQueries: 1})
	for range 2 {
		status, _, raw := do(t, srv, http.MethodGet, "/v1/federation/clusters", "Bearer "+readerKey, "")
		require.Equal(t, http.StatusOK, status, string(raw))
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/federation/clusters", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+readerKey)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	after, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.InDelta(t, 2, after, 1, "0.5 a second: a token in about 2 s")
	status, eb, _ := do(t, srv, http.MethodGet, "/v1/federation/clusters", "Bearer "+readerKey, "")
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Equal(t, codeRateLimited, eb.Error.Code)
	require.Contains(t, eb.Error.Message, "0.5 requests a second")

	status, _, _ = do(t, srv, http.MethodGet, "/v1/federation/clusters", "Bearer "+operatorKey, "")
	require.Equal(t, http.StatusOK, status, "another key")
	for range 10 {
		status, _, _ := do(t, srv, http.MethodGet, "/healthz", "", "")
		require.Equal(t, http.StatusOK, status, "the public routes are not limited")
	}
}

// TestQueriesAtOnceRoute: limitQueries holds a key's slot while the
// handler runs and frees it when it returns, whatever it returns.
func TestQueriesAtOnceRoute(t *testing.T) {
	t.Parallel()
	s, _ := limitedServer(t, config.Limits{KeyRate: 100, KeyBurst: 100, KeyMaxQueries: 1})
	block, entered := make(chan struct{}), make(chan struct{})
	slow := s.limitQueries(func(echo.Context) error {
		close(entered)
		<-block
		return fmt.Errorf("failed after a while")
	})
	call := func(h echo.HandlerFunc) (http.Header, error) {
		req := httptest.NewRequestWithContext(context.WithoutCancel(t.Context()), http.MethodPost, "/v1/query", nil)
		rec := httptest.NewRecorder()
		c := s.e.NewContext(req, rec)
		c.Set(principalKey, store.Principal{KeyID: 8, Role: store.RoleReader})
		err := h(c)
		return rec.Header(), err
	}
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = call(slow) })
	<-entered
	fast := s.limitQueries(func(echo.Context) error { return nil })
	h, err := call(fast)
	require.ErrorContains(t, err, "runs 1 federated queries already")
	require.Equal(t, "1", h.Get("Retry-After"))
	close(block)
	wg.Wait()
	_, err = call(fast)
	require.NoError(t, err, "the slot is free once the slow query failed")
}

// TestRefusedKeysPerClient: a client whose keys are refused burst times
// gets a 429 with Retry-After before any further key is looked up, a good
// key from it too; a missing header is not counted.
func TestRefusedKeysPerClient(t *testing.T) {
	t.Parallel()
	_, srv := limitedServer(t, config.Limits{KeyRate: 1000, KeyBurst: 1000, KeyMaxQueries: 1})
	for range 3 * refusedKeyBurst {
		status, _, _ := do(t, srv, http.MethodGet, "/v1/federation/clusters", "", "")
		require.Equal(t, http.StatusUnauthorized, status, "a missing key costs nothing")
	}
	for i := range refusedKeyBurst {
		status, _, _ := do(t, srv, http.MethodGet, "/v1/federation/clusters", fmt.Sprintf("Bearer sdb_guess%d", i), "")
		require.Equal(t, http.StatusUnauthorized, status, "guess %d", i)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/federation/clusters", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+readerKey)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "even a good key, until the client's budget refills")
	after, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.Equal(t, 1, after, "%d a second: a token within a second", refusedKeyRate)
	status, eb, _ := do(t, srv, http.MethodGet, "/v1/federation/clusters", "Bearer sdb_another", "")
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Equal(t, codeTooManyRefused, eb.Error.Code)
}

// TestBucketsWait: wait takes no token and says how long until one.
func TestBucketsWait(t *testing.T) {
	t.Parallel()
	b := newBuckets[string](2, 1)
	now := time.Unix(1000, 0)
	require.Zero(t, b.wait("a", now), "no bucket yet: no wait")
	_, ok := b.allow("a", now)
	require.True(t, ok)
	require.Equal(t, 500*time.Millisecond, b.wait("a", now))
	require.Equal(t, 500*time.Millisecond, b.wait("a", now), "waiting took no token")
	require.Zero(t, b.wait("a", now.Add(500*time.Millisecond)))
}
