package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/syndb/federation/internal/domain"
)

// KeyPrefix starts every API key, so leaked keys are easy to recognise.
const KeyPrefix = "sdb_"

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

// CreateAPIKey creates a key named name for account (created when missing)
// and returns the key. Only its hash is stored: the key cannot be shown again.
func (s *Store) CreateAPIKey(ctx context.Context, account, name, role string) (string, error) {
	key, _, err := s.NewAPIKey(ctx, account, name, role)
	return key, err
}

// NewAPIKey is CreateAPIKey that also returns the key's record. An empty
// role is an admin key.
func (s *Store) NewAPIKey(ctx context.Context, account, name, role string) (string, APIKey, error) {
	if strings.TrimSpace(name) == "" {
		return "", APIKey{}, errors.New("api key name must not be empty")
	}
	if role == "" {
		role = RoleAdmin
	}
	if RoleRank(role) == 0 {
		return "", APIKey{}, fmt.Errorf("api key role %q: use one of %s", role, strings.Join(Roles, ", "))
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", APIKey{}, fmt.Errorf("generate api key: %w", err)
	}
	key := KeyPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw[:]))
	hash := sha256.Sum256([]byte(key))
	var rec APIKey
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var accountID, id int64
		err := tx.QueryRow(ctx, `INSERT INTO accounts (name) VALUES ($1)
			ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`, account).Scan(&accountID)
		if err != nil {
			return fmt.Errorf("upsert account %q: %w", account, err)
		}
		err = tx.QueryRow(ctx, `INSERT INTO api_keys (account_id, name, prefix, key_hash, role) VALUES ($1, $2, $3, $4, $5)
			RETURNING id`, accountID, name, key[:len(KeyPrefix)+6], hash[:], role).Scan(&id)
		if err != nil {
			return fmt.Errorf("insert api key %q: %w", name, err)
		}
		rec, err = scanAPIKey(tx.QueryRow(ctx, apiKeySelect+` WHERE k.id = $1`, id))
		if err != nil {
			return fmt.Errorf("read api key %q: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return "", APIKey{}, err
	}
	return key, rec, nil
}

// Authenticate returns the principal behind key, or ErrUnauthorized.
func (s *Store) Authenticate(ctx context.Context, key string) (Principal, error) {
	if !strings.HasPrefix(key, KeyPrefix) || len(key) > 128 {
		return Principal{}, domain.ErrUnauthorized
	}
	hash := sha256.Sum256([]byte(key))
	var p Principal
	err := s.pool.QueryRow(ctx, `UPDATE api_keys k SET last_used_at = now()
		FROM accounts a
		WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND a.id = k.account_id
		RETURNING k.id, k.name, a.name, k.role`, hash[:]).Scan(&p.KeyID, &p.KeyName, &p.Account, &p.Role)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, domain.ErrUnauthorized
	}
	if err != nil {
		return Principal{}, fmt.Errorf("look up api key: %w", err)
	}
	return p, nil
}

// APIKey is the record of an API key (never the key itself: only its hash
// is stored).
type APIKey struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Account    string     `json:"account"`
	Prefix     string     `json:"prefix"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

const apiKeySelect = `SELECT k.id, k.name, a.name, k.prefix, k.role, k.created_at, k.last_used_at, k.revoked_at
	FROM api_keys k JOIN accounts a ON a.id = k.account_id`

func scanAPIKey(row pgx.Row) (APIKey, error) {
	var k APIKey
	err := row.Scan(&k.ID, &k.Name, &k.Account, &k.Prefix, &k.Role, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
	k.CreatedAt = k.CreatedAt.UTC()
	return k, err
}

// APIKeys lists every API key, revoked ones too, oldest first.
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

// RevokeAPIKey revokes the key id: it authenticates no more. Revoking a
// revoked key changes nothing; an unknown id is ErrNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, id int64) (APIKey, error) {
	_, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`, id)
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke api key %d: %w", id, err)
	}
	k, err := scanAPIKey(s.pool.QueryRow(ctx, apiKeySelect+` WHERE k.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return APIKey{}, fmt.Errorf("api key %d: %w", id, domain.ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("read api key %d: %w", id, err)
	}
	return k, nil
}
