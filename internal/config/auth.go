package config

import (
	"errors"
	"fmt"
	"time"
)

// MaxAuthCacheTTL bounds SYNDB_AUTH_CACHE_TTL: a revoked or rotated key is
// dropped from every API process's cache when PostgreSQL's notification
// arrives, and at the latest when its cache entry ends, so even a lost
// notification cannot keep it alive more than this (plus a look-up).
const MaxAuthCacheTTL = 4 * time.Second

// Auth configures how the API authenticates API keys (internal/keyauth).
type Auth struct {
	// CacheTTL is how long a verified key is trusted from memory before
	// PostgreSQL is read again; 0 reads PostgreSQL on every request.
	CacheTTL time.Duration `env:"SYNDB_AUTH_CACHE_TTL" envDefault:"2s"`
	// CacheSize bounds the verified keys kept (least recently used go
	// first); a sixteenth of it, at least 64, bounds the unknown keys
	// remembered.
	CacheSize int `env:"SYNDB_AUTH_CACHE_SIZE" envDefault:"10000"`
	// LastUsedFlush is how often the keys' last use is written, in one
	// statement for every key used since the last write.
	LastUsedFlush time.Duration `env:"SYNDB_AUTH_LAST_USED_FLUSH" envDefault:"5s"`
}

// Validate checks the authentication settings.
func (a *Auth) Validate() error {
	var errs []error
	if a.CacheTTL < 0 || a.CacheTTL > MaxAuthCacheTTL {
		errs = append(errs, fmt.Errorf("SYNDB_AUTH_CACHE_TTL: %s is outside 0s..%s (revocation must reach every API within 5s)",
			a.CacheTTL, MaxAuthCacheTTL))
	}
	if a.CacheSize < 1 || a.CacheSize > 1_000_000 {
		errs = append(errs, fmt.Errorf("SYNDB_AUTH_CACHE_SIZE: %d is outside 1..1000000", a.CacheSize))
	}
	if a.LastUsedFlush < 100*time.Millisecond || a.LastUsedFlush > time.Minute {
		errs = append(errs, fmt.Errorf("SYNDB_AUTH_LAST_USED_FLUSH: %s is outside 100ms..1m", a.LastUsedFlush))
	}
	return errors.Join(errs...)
}

// Key lifetimes that `syndb apikey` and POST /v1/apikeys accept.
const (
	// MinKeyTTL and MaxKeyTTL bound a new key's ttl.
	MinKeyTTL = time.Minute
	MaxKeyTTL = 366 * 24 * time.Hour
	// MaxRotationGrace bounds how long a rotated key stays valid.
	MaxRotationGrace = 30 * 24 * time.Hour
)

// CheckKeyTTL checks a new key's ttl (0: no expiry); name is the setting
// the error names.
func CheckKeyTTL(name string, ttl time.Duration) error {
	if ttl != 0 && (ttl < MinKeyTTL || ttl > MaxKeyTTL) {
		return fmt.Errorf("%s: %s is outside %s..%s (or 0 for a key that does not expire)", name, ttl, MinKeyTTL, MaxKeyTTL)
	}
	return nil
}

// CheckRotationGrace checks a rotation's grace period (0: the old key is
// refused at once).
func CheckRotationGrace(name string, grace time.Duration) error {
	if grace < 0 || grace > MaxRotationGrace {
		return fmt.Errorf("%s: %s is outside 0s..%s", name, grace, MaxRotationGrace)
	}
	return nil
}
