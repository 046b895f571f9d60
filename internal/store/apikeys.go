package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/syndb/federation/internal/domain"
)

// KeyPrefix starts every API key, so leaked keys are easy to recognise.
const KeyPrefix = "sdb_"

// maxKeyLen bounds what is hashed: a longer string is not a key.
const maxKeyLen = 128

// APIKeyChannel is the PostgreSQL NOTIFY channel on which every revocation
// and rotation of an API key is announced (the payload is the key's ID), so
// each API process drops the key from its cache at once.
const APIKeyChannel = "syndb_apikeys"

// DefaultRotationGrace is how long a rotated key stays valid when the
// rotation names no grace period.
const DefaultRotationGrace = 24 * time.Hour

// ErrNotRotatable is returned for a rotation of a key that is revoked,
// expired or already rotated.
var ErrNotRotatable = errors.New("api key cannot be rotated")

// Roles of an API key, from the least to the most it may do. Each role may
// do everything the roles before it may.
const (
	// RoleReader reads the federation and runs federated queries.
	RoleReader = "reader"
	// RoleOperator also starts syncs, jobs, uploads and health sweeps, and
	// cancels its own jobs.
	RoleOperator = "operator"
	// RoleAdmin also enrols and revokes nodes, manages API keys and cancels
	// any job.
	RoleAdmin = "admin"
)

// Roles lists every role, least first.
var Roles = []string{RoleReader, RoleOperator, RoleAdmin}

// RoleRank orders roles: 1 for a reader up to 3 for an admin, 0 for
// anything else.
func RoleRank(role string) int {
	for i, r := range Roles {
		if r == role {
			return i + 1
		}
	}
	return 0
}

// Principal is the identity behind an API key.
type Principal struct {
	KeyID   int64
	KeyName string
	Account string
	Role    string
}

// KeySpec describes a key to create.
type KeySpec struct {
	// Account owns the key; it is created when missing.
	Account string
	Name    string
	// Role is one of Roles; empty is a reader.
	Role string
	// TTL is how long the key lives; zero is no expiry. The callers check
	// its range.
	TTL time.Duration
	// CreatedBy says who made the key: "cli", or the admin key's
	// CreatedByKey.
	CreatedBy string
}

// CreatedByKey is the CreatedBy of a key made with the key p.
func CreatedByKey(p Principal) string { return fmt.Sprintf("key %d (%s)", p.KeyID, p.KeyName) }

// CreateAPIKey creates a key named name with role (a reader when empty) for
// account (created when missing) and returns the key. Only its hash is
// stored: the key cannot be shown again.
func (s *Store) CreateAPIKey(ctx context.Context, account, name, role string) (string, error) {
	key, _, err := s.NewAPIKey(ctx, KeySpec{Account: account, Name: name, Role: role})
	return key, err
}

// NewAPIKey creates the key spec describes and returns it with its record.
func (s *Store) NewAPIKey(ctx context.Context, spec KeySpec) (string, APIKey, error) {
	if strings.TrimSpace(spec.Name) == "" {
		return "", APIKey{}, errors.New("api key name must not be empty")
	}
	if spec.Role == "" {
		spec.Role = RoleReader
	}
	if RoleRank(spec.Role) == 0 {
		return "", APIKey{}, fmt.Errorf("api key role %q: use one of %s", spec.Role, strings.Join(Roles, ", "))
	}
	if spec.TTL < 0 {
		return "", APIKey{}, fmt.Errorf("api key ttl %s must not be negative", spec.TTL)
	}
	var rec APIKey
	var key string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var accountID int64
		err := tx.QueryRow(ctx, `INSERT INTO accounts (name) VALUES ($1)
			ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`, spec.Account).Scan(&accountID)
		if err != nil {
			return fmt.Errorf("upsert account %q: %w", spec.Account, err)
		}
		key, rec, err = insertKey(ctx, tx, accountID, spec)
		return err
	})
	if err != nil {
		return "", APIKey{}, err
	}
	return key, rec, nil
}

// insertKey generates a key and stores its hash for accountID.
func insertKey(ctx context.Context, tx pgx.Tx, accountID int64, spec KeySpec) (string, APIKey, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", APIKey{}, fmt.Errorf("generate api key: %w", err)
	}
	key := KeyPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw[:]))
	hash := sha256.Sum256([]byte(key))
	var ttlMicros *int64 // NULL: no expiry
	if spec.TTL > 0 {
		us := spec.TTL.Microseconds()
		ttlMicros = &us
	}
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO api_keys (account_id, name, prefix, key_hash, role, created_by, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, now() + $7::bigint * interval '1 microsecond') RETURNING id`,
		accountID, spec.Name, key[:len(KeyPrefix)+6], hash[:], spec.Role, spec.CreatedBy, ttlMicros).Scan(&id)
	if err != nil {
		return "", APIKey{}, fmt.Errorf("insert api key %q: %w", spec.Name, err)
	}
	rec, err := scanAPIKey(tx.QueryRow(ctx, apiKeySelect+` WHERE k.id = $1`, id))
	if err != nil {
		return "", APIKey{}, fmt.Errorf("read api key %q: %w", spec.Name, err)
	}
	return key, rec, nil
}

// HashKey is the SHA-256 of key, as stored; ok is false for a string that
// cannot be a key (no KeyPrefix, or too long), which needs no look-up.
func HashKey(key string) (hash [32]byte, ok bool) {
	if !strings.HasPrefix(key, KeyPrefix) || len(key) > maxKeyLen {
		return hash, false
	}
	return sha256.Sum256([]byte(key)), true
}

// Grant is what a key grants: its principal, until it expires, unless it
// is revoked.
type Grant struct {
	Principal
	// ExpiresAt is when the key stops authenticating; nil is never.
	ExpiresAt *time.Time
	Revoked   bool
}

// Check tells whether the grant authenticates at now: nil, or
// domain.ErrUnauthorized for a revoked key and domain.ErrKeyExpired for an
// expired one.
func (g Grant) Check(now time.Time) error {
	switch {
	case g.Revoked:
		return domain.ErrUnauthorized
	case g.ExpiresAt != nil && !now.Before(*g.ExpiresAt):
		return domain.ErrKeyExpired
	}
	return nil
}

// APIKeyGrant reads the grant of the key whose hash is hash, or
// domain.ErrUnauthorized when there is none. It writes nothing.
func (s *Store) APIKeyGrant(ctx context.Context, hash [32]byte) (Grant, error) {
	var g Grant
	err := s.pool.QueryRow(ctx, `SELECT k.id, k.name, a.name, k.role, k.expires_at, k.revoked_at IS NOT NULL
		FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1`, hash[:]).
		Scan(&g.KeyID, &g.KeyName, &g.Account, &g.Role, &g.ExpiresAt, &g.Revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return Grant{}, domain.ErrUnauthorized
	}
	if err != nil {
		return Grant{}, fmt.Errorf("look up api key: %w", err)
	}
	return g, nil
}

// Authenticate returns the principal behind key, or domain.ErrUnauthorized
// (domain.ErrKeyExpired for an expired key). It reads PostgreSQL every
// time and records no use: the API authenticates through its cache
// (internal/keyauth), which records uses in batches.
func (s *Store) Authenticate(ctx context.Context, key string) (Principal, error) {
	hash, ok := HashKey(key)
	if !ok {
		return Principal{}, domain.ErrUnauthorized
	}
	g, err := s.APIKeyGrant(ctx, hash)
	if err != nil {
		return Principal{}, err
	}
	if err := g.Check(time.Now()); err != nil {
		return Principal{}, err
	}
	return g.Principal, nil
}

// TouchAPIKeys records when each key of used was last used, in one
// statement; a time older than the one recorded changes nothing.
func (s *Store) TouchAPIKeys(ctx context.Context, used map[int64]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(used))
	ats := make([]time.Time, 0, len(used))
	for id, at := range used {
		ids = append(ids, id)
		ats = append(ats, at)
	}
	_, err := s.pool.Exec(ctx, `UPDATE api_keys k SET last_used_at = u.at
		FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, at)
		WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)`, ids, ats)
	if err != nil {
		return fmt.Errorf("record api key use: %w", err)
	}
	return nil
}

// Key states, as APIKey.State reports them.
const (
	KeyActive = "active"
	// KeyGrace is a rotated key still valid until its expiry.
	KeyGrace   = "grace"
	KeyRotated = "rotated"
	KeyExpired = "expired"
	KeyRevoked = "revoked"
)

// APIKey is the record of an API key (never the key itself: only its hash
// is stored).
type APIKey struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Account    string     `json:"account"`
	Prefix     string     `json:"prefix"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	// ReplacedBy is the key a rotation issued in this one's place.
	ReplacedBy *int64 `json:"replaced_by,omitempty"`
	// State is active, grace (rotated, valid until expires_at), rotated
	// (its grace is over), expired or revoked, as of the read.
	State string `json:"state"`
}

const apiKeySelect = `SELECT k.id, k.name, a.name, k.prefix, k.role, k.created_at, k.created_by, k.expires_at,
	k.last_used_at, k.revoked_at, k.replaced_by,
	CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'
		WHEN k.expires_at <= now() AND k.replaced_by IS NOT NULL THEN 'rotated'
		WHEN k.expires_at <= now() THEN 'expired'
		WHEN k.replaced_by IS NOT NULL THEN 'grace'
		ELSE 'active' END
	FROM api_keys k JOIN accounts a ON a.id = k.account_id`

func scanAPIKey(row pgx.Row) (APIKey, error) {
	var k APIKey
	err := row.Scan(&k.ID, &k.Name, &k.Account, &k.Prefix, &k.Role, &k.CreatedAt, &k.CreatedBy, &k.ExpiresAt,
		&k.LastUsedAt, &k.RevokedAt, &k.ReplacedBy, &k.State)
	k.CreatedAt = k.CreatedAt.UTC()
	for _, t := range []*time.Time{k.ExpiresAt, k.LastUsedAt, k.RevokedAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	return k, err
}

// APIKeys lists every API key, revoked and expired ones too, oldest first.
func (s *Store) APIKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, apiKeySelect+` ORDER BY k.id`)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) { return scanAPIKey(r) })
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	if out == nil {
		out = []APIKey{}
	}
	return out, nil
}

// RevokeAPIKey revokes the key id: it authenticates no more, and every API
// process is told on APIKeyChannel. Revoking a revoked key changes nothing;
// an unknown id is ErrNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, id int64) (APIKey, error) {
	var k APIKey
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("revoke api key %d: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("api key %d: %w", id, domain.ErrNotFound)
		}
		if err := notifyKey(ctx, tx, id); err != nil {
			return err
		}
		k, err = scanAPIKey(tx.QueryRow(ctx, apiKeySelect+` WHERE k.id = $1`, id))
		if err != nil {
			return fmt.Errorf("read api key %d: %w", id, err)
		}
		return nil
	})
	return k, err
}

// RotateAPIKey issues a new key in place of the key id, with its name,
// account and role, and a lifetime as long as the old key's had (none when
// it had none); the old key stays valid for grace more (never past its own
// expiry), then is refused as expired. by is the new key's CreatedBy. A
// revoked, expired or already rotated key is ErrNotRotatable; an unknown
// id is ErrNotFound. Every API process is told on APIKeyChannel.
func (s *Store) RotateAPIKey(ctx context.Context, id int64, grace time.Duration, by string) (key string, rotated, replaced APIKey, err error) {
	if grace < 0 {
		return "", APIKey{}, APIKey{}, fmt.Errorf("rotation grace %s must not be negative", grace)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		old, err := scanAPIKey(tx.QueryRow(ctx, apiKeySelect+` WHERE k.id = $1 FOR UPDATE OF k`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("api key %d: %w", id, domain.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read api key %d: %w", id, err)
		}
		switch old.State {
		case KeyActive:
		case KeyGrace, KeyRotated:
			return fmt.Errorf("%w: key %d was already rotated; key %d replaces it", ErrNotRotatable, id, *old.ReplacedBy)
		default:
			return fmt.Errorf("%w: key %d is %s", ErrNotRotatable, id, old.State)
		}
		spec := KeySpec{Account: old.Account, Name: old.Name, Role: old.Role, CreatedBy: by}
		if old.ExpiresAt != nil {
			spec.TTL = old.ExpiresAt.Sub(old.CreatedAt)
		}
		var accountID int64
		if err := tx.QueryRow(ctx, `SELECT account_id FROM api_keys WHERE id = $1`, id).Scan(&accountID); err != nil {
			return fmt.Errorf("read api key %d: %w", id, err)
		}
		if key, rotated, err = insertKey(ctx, tx, accountID, spec); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE api_keys SET replaced_by = $2,
			expires_at = least(coalesce(expires_at, 'infinity'), now() + $3::bigint * interval '1 microsecond') WHERE id = $1`,
			id, rotated.ID, grace.Microseconds())
		if err != nil {
			return fmt.Errorf("retire api key %d: %w", id, err)
		}
		if err := notifyKey(ctx, tx, id); err != nil {
			return err
		}
		replaced, err = scanAPIKey(tx.QueryRow(ctx, apiKeySelect+` WHERE k.id = $1`, id))
		if err != nil {
			return fmt.Errorf("read api key %d: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return "", APIKey{}, APIKey{}, err
	}
	return key, rotated, replaced, nil
}

// notifyKey tells every API process, on commit, that key id changed.
func notifyKey(ctx context.Context, tx pgx.Tx, id int64) error {
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, APIKeyChannel, strconv.FormatInt(id, 10)); err != nil {
		return fmt.Errorf("notify api key %d: %w", id, err)
	}
	return nil
}
