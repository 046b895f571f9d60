package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/syndb/federation/internal/config"
)

// Error codes of the per-key limits (429).
const (
	codeRateLimited    = "rate_limited"
	codeTooManyQueries = "too_many_queries"
	codeTooManyRefused = "too_many_refused_keys"
)

// A client address may present refusedKeyBurst keys that are refused
// (unknown, revoked, expired), then refusedKeyRate a second; past that
// its requests with a key are a 429 before the key is looked up, so
// guessing keys cannot turn into a PostgreSQL read per request. A missing
// or malformed header costs nothing and is not counted.
const (
	refusedKeyRate  = 5
	refusedKeyBurst = 50
)

// errTooManyRefused is the 429 of a client whose keys were refused too
// often.
func errTooManyRefused(wait time.Duration) error {
	return &apiError{http.StatusTooManyRequests, codeTooManyRefused, fmt.Sprintf(
		"this client presented too many invalid API keys (%d, then %d a second): retry in %d s",
		refusedKeyBurst, refusedKeyRate, retryAfter(wait))}
}

// maxBuckets bounds the table of token buckets; a bucket that refilled is
// forgotten first (it is the same as a new one).
const maxBuckets = 10_000

// keyLimits holds, in this API process, each API key's token bucket and
// the count of its federated queries running. The zero limit of either
// (only a configuration built in code has it: config.Load refuses it)
// turns it off.
type keyLimits struct {
	rate       rate.Limit
	burst      int
	maxQueries int

	buckets *buckets[int64]

	mu      sync.Mutex
	running map[int64]int
}

func newKeyLimits(c config.Limits) *keyLimits {
	return &keyLimits{rate: rate.Limit(c.KeyRate), burst: c.KeyBurst, maxQueries: c.KeyMaxQueries,
		buckets: newBuckets[int64](rate.Limit(c.KeyRate), c.KeyBurst), running: map[int64]int{}}
}

// allow takes a token from key's bucket at now. When there is none, it
// takes nothing and says how long until there is one.
func (l *keyLimits) allow(key int64, now time.Time) (time.Duration, bool) {
	return l.buckets.allow(key, now)
}

// buckets is a bounded table of token buckets, one for each K, all of the
// same rate and burst. The zero rate or burst turns it off.
type buckets[K comparable] struct {
	rate  rate.Limit
	burst int

	mu    sync.Mutex
	table map[K]*rate.Limiter
}

func newBuckets[K comparable](r rate.Limit, burst int) *buckets[K] {
	return &buckets[K]{rate: r, burst: burst, table: map[K]*rate.Limiter{}}
}

// allow takes a token from k's bucket at now. When there is none, it
// takes nothing and says how long until there is one.
func (b *buckets[K]) allow(k K, now time.Time) (time.Duration, bool) {
	if b.rate <= 0 || b.burst <= 0 {
		return 0, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.bucket(k, now).ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if wait == 0 {
		return 0, true
	}
	r.CancelAt(now)
	return wait, false
}

// wait says how long until k's bucket has a token, taking none.
func (b *buckets[K]) wait(k K, now time.Time) time.Duration {
	if b.rate <= 0 || b.burst <= 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.table[k]
	if !ok || l.TokensAt(now) >= 1 {
		return 0
	}
	r := l.ReserveN(now, 1)
	defer r.CancelAt(now)
	return r.DelayFrom(now)
}

// bucket is k's bucket, made when it has none. A full table first forgets
// every bucket that refilled, then, if none had, any one.
func (b *buckets[K]) bucket(k K, now time.Time) *rate.Limiter {
	if l, ok := b.table[k]; ok {
		return l
	}
	if len(b.table) >= maxBuckets {
		for key, l := range b.table {
			if l.TokensAt(now) >= float64(b.burst) {
				delete(b.table, key)
			}
		}
		for key := range b.table {
			if len(b.table) < maxBuckets {
				break
			}
			delete(b.table, key)
		}
	}
	l := rate.NewLimiter(b.rate, b.burst)
	b.table[k] = l
	return l
}

// startQuery counts one more running query of key, unless it already runs
// its most; the release it returns counts it ended (once, however often
// called).
func (l *keyLimits) startQuery(key int64) (release func(), ok bool) {
	if l.maxQueries <= 0 {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[key] >= l.maxQueries {
		return nil, false
	}
	l.running[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.running[key]--; l.running[key] <= 0 {
				delete(l.running, key)
			}
		})
	}, true
}

// retryAfter is wait in whole seconds, at least 1: a Retry-After value.
func retryAfter(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}

// errRateLimited is the 429 of a key over its rate.
func (l *keyLimits) errRateLimited(wait time.Duration) error {
	return &apiError{http.StatusTooManyRequests, codeRateLimited, fmt.Sprintf(
		"this API key may make %g requests a second (bursts of %d) on this API replica: retry in %d s",
		float64(l.rate), l.burst, retryAfter(wait))}
}

// errTooManyQueries is the 429 of a key running its most queries.
func (l *keyLimits) errTooManyQueries() error {
	return &apiError{http.StatusTooManyRequests, codeTooManyQueries, fmt.Sprintf(
		"this API key runs %d federated queries already, its most on this API replica: retry when one has ended",
		l.maxQueries)}
}

// limitRate refuses a key's request when its bucket is empty: a 429 with
// Retry-After. Requests without a key (the public routes) are not limited.
func (s *Server) limitRate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, ok := principal(c)
		if !ok {
			return next(c)
		}
		if wait, ok := s.limits.allow(p.KeyID, time.Now()); !ok {
			c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfter(wait)))
			return s.limits.errRateLimited(wait)
		}
		return next(c)
	}
}

// limitQueries counts a federated query against its key's most at once
// while next runs (it returns when the answer has ended, however it ended):
// one over the most is a 429 with Retry-After.
func (s *Server) limitQueries(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, _ := principal(c)
		release, ok := s.limits.startQuery(p.KeyID)
		if !ok {
			c.Response().Header().Set("Retry-After", "1")
			return s.limits.errTooManyQueries()
		}
		defer release()
		return next(c)
	}
}
