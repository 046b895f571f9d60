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

// EnrollmentPrefix starts every enrollment token.
const EnrollmentPrefix = "sdbenroll_"

// ClusterChannel is the PostgreSQL NOTIFY channel on which registry changes
// (enrolment, revocation) are announced, with the cluster name as payload.
const ClusterChannel = "syndb_clusters"

// Enrollment is a new cluster entry and its single-use token.
type Enrollment struct {
	Name      string    `json:"name"`
	Token     string    `json:"enrollment_token"`
	ExpiresAt time.Time `json:"expires_at"`
	// DataHost is the host an admin allowed the node's data addresses on,
	// besides the host its connection comes from ("" for none).
	DataHost string `json:"data_host,omitempty"`
}

// CreateCluster creates the entry for a new node (or renews the token of one
// that has not registered yet, or re-opens a revoked name) and returns a
// single-use enrollment token valid for ttl. dataHost, when not empty, is a
// host the node's data addresses may be on besides the host its connection
// comes from (replacing any set before). An enrolled, active name is
// ErrExists. It announces the change on ClusterChannel.
func (s *Store) CreateCluster(ctx context.Context, name string, ttl time.Duration, dataHost string) (Enrollment, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Enrollment{}, fmt.Errorf("generate enrollment token: %w", err)
	}
	token := EnrollmentPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw[:]))
	hash := sha256.Sum256([]byte(token))
	e := Enrollment{Name: name, Token: token, DataHost: dataHost}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			peerID *string
			status string
		)
		err := tx.QueryRow(ctx, `SELECT peer_id, status FROM clusters WHERE name = $1 FOR UPDATE`, name).Scan(&peerID, &status)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := tx.Exec(ctx, `INSERT INTO clusters (name, data_host) VALUES ($1, $2)`, name, dataHost); err != nil {
				return fmt.Errorf("create cluster %q: %w", name, err)
			}
		case err != nil:
			return fmt.Errorf("look up cluster %q: %w", name, err)
		case status == "active" && peerID != nil:
			return fmt.Errorf("%w: %q is bound to peer %s (revoke it first to re-enroll)", domain.ErrExists, name, *peerID)
		case status == "revoked":
			_, err := tx.Exec(ctx, `UPDATE clusters SET status = 'active', peer_id = NULL, addrs = '{}', revoked_at = NULL,
				health = 'unknown', health_since = now(), data_host = $2, updated_at = now() WHERE name = $1`, name, dataHost)
			if err != nil {
				return fmt.Errorf("re-open cluster %q: %w", name, err)
			}
		default:
			if _, err := tx.Exec(ctx, `UPDATE clusters SET data_host = $2, updated_at = now() WHERE name = $1`, name, dataHost); err != nil {
				return fmt.Errorf("set data host of %q: %w", name, err)
			}
		}
		// A new token replaces any open one.
		if _, err := tx.Exec(ctx, `DELETE FROM enrollment_tokens WHERE cluster = $1 AND used_at IS NULL`, name); err != nil {
			return fmt.Errorf("replace enrollment token of %q: %w", name, err)
		}
		err = tx.QueryRow(ctx, `INSERT INTO enrollment_tokens (token_hash, cluster, expires_at)
			VALUES ($1, $2, now() + $3::interval) RETURNING expires_at`, hash[:], name, ttl.String()).Scan(&e.ExpiresAt)
		if err != nil {
			return fmt.Errorf("store enrollment token of %q: %w", name, err)
		}
		// Hub processes open their gater to unknown peers while a token is open.
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ClusterChannel, name); err != nil {
			return fmt.Errorf("announce enrollment of %q: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return Enrollment{}, err
	}
	e.ExpiresAt = e.ExpiresAt.UTC()
	return e, nil
}

// RevokeCluster marks a cluster revoked: its peer is refused from now on.
// It announces the change on ClusterChannel so hub processes drop the peer.
func (s *Store) RevokeCluster(ctx context.Context, name string) (domain.Cluster, error) {
	var c domain.Cluster
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		c, err = scanCluster(tx.QueryRow(ctx, `UPDATE clusters SET status = 'revoked', revoked_at = now(), updated_at = now()
			WHERE name = $1 RETURNING `+clusterColumns, name))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("cluster %q: %w", name, domain.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("revoke cluster %q: %w", name, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM enrollment_tokens WHERE cluster = $1 AND used_at IS NULL`, name); err != nil {
			return fmt.Errorf("revoke cluster %q: %w", name, err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ClusterChannel, name); err != nil {
			return fmt.Errorf("announce revocation of %q: %w", name, err)
		}
		return nil
	})
	return c, err
}

// PeerAccess is the hub's view of who may connect.
type PeerAccess struct {
	// Enrolled maps the peer IDs of active clusters to their names.
	Enrolled map[string]string
	// Revoked holds the peer IDs of revoked clusters.
	Revoked map[string]bool
	// Enrolling is true while an unused, unexpired enrollment token exists:
	// unknown peers may then connect to present it.
	Enrolling bool
}

// Access reads the peer access lists.
func (s *Store) Access(ctx context.Context) (PeerAccess, error) {
	a := PeerAccess{Enrolled: map[string]string{}, Revoked: map[string]bool{}}
	rows, err := s.pool.Query(ctx, `SELECT name, peer_id, status FROM clusters WHERE peer_id IS NOT NULL`)
	if err != nil {
		return a, fmt.Errorf("read peer access: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, peerID, status string
		if err := rows.Scan(&name, &peerID, &status); err != nil {
			return a, fmt.Errorf("read peer access: %w", err)
		}
		if status == "revoked" {
			a.Revoked[peerID] = true
		} else {
			a.Enrolled[peerID] = name
		}
	}
	if err := rows.Err(); err != nil {
		return a, fmt.Errorf("read peer access: %w", err)
	}
	err = s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM enrollment_tokens WHERE used_at IS NULL AND expires_at > now())`).Scan(&a.Enrolling)
	if err != nil {
		return a, fmt.Errorf("read open enrollments: %w", err)
	}
	return a, nil
}

// Listen calls fn with the payload of every notification on channel until
// ctx ends, reconnecting (and telling onErr) after errors.
func (s *Store) Listen(ctx context.Context, channel string, fn func(payload string), onErr func(error)) {
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, channel, fn)
		if ctx.Err() != nil {
			return
		}
		onErr(err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, channel string, fn func(string)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire listen connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen %s: %w", channel, err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "UNLISTEN *") }()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		fn(n.Payload)
	}
}
