package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrPeerMismatch is returned when a name already belongs to another peer.
var ErrPeerMismatch = errors.New("cluster name is bound to another peer")

// Cluster is one node in the registry.
type Cluster struct {
	Name           string    `json:"name"`
	PeerID         string    `json:"peer_id"`
	Addrs          []string  `json:"addrs"`
	FlightAddr     string    `json:"flight_addr"`
	ClickHouseAddr string    `json:"clickhouse_addr"`
	AgentVersion   string    `json:"agent_version"`
	SchemaVersion  int       `json:"schema_version"`
	Status         string    `json:"status"`
	Health         string    `json:"health"`
	HealthSince    time.Time `json:"health_since"`
	// HealthReason says why the node is in its health state.
	HealthReason string `json:"health_reason"`
	// HealthLatencyMS is the last ping's round trip (0 before the first).
	HealthLatencyMS float64   `json:"health_latency_ms"`
	LastSeen        time.Time `json:"last_seen"`
	RegisteredAt    time.Time `json:"registered_at"`
	// Drift is set while the node's ledger disagrees with the hub's
	// migrations; sync leaves such a node alone.
	Drift *Drift `json:"schema_drift,omitempty"`
}

// Drift says where a node's schema ledger disagrees with the hub's migrations.
type Drift struct {
	Version int    `json:"version"`
	Reason  string `json:"reason"`
}

// Registration is what a node tells the hub when it registers.
type Registration struct {
	Name           string
	PeerID         string
	Addrs          []string
	FlightAddr     string
	ClickHouseAddr string
	AgentVersion   string
	SchemaVersion  int
	// Token is the enrollment token; needed only until the name is bound.
	Token string
}

// Register writes a node's registration. The name must have been enrolled
// (CreateCluster). The first registration presents the enrollment token and
// binds the name to the node's peer ID; later ones come from that peer and
// need no token. A wrong, used or expired token, a revoked name, or a name
// bound to another peer is refused and nothing changes.
func (s *Store) Register(ctx context.Context, r Registration) (Cluster, error) {
	var c Cluster
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			existing *string
			status   string
		)
		err := tx.QueryRow(ctx, `SELECT peer_id, status FROM clusters WHERE name = $1 FOR UPDATE`, r.Name).Scan(&existing, &status)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("%w (%q)", ErrNotEnrolled, r.Name)
		case err != nil:
			return fmt.Errorf("look up cluster %q: %w", r.Name, err)
		case status == "revoked":
			return fmt.Errorf("%w: %q", ErrRevoked, r.Name)
		case existing != nil && *existing != r.PeerID:
			return fmt.Errorf("%w: %q is registered to peer %s", ErrPeerMismatch, r.Name, *existing)
		case existing == nil:
			if err := redeem(ctx, tx, r); err != nil {
				return err
			}
		}
		row := tx.QueryRow(ctx, `UPDATE clusters SET peer_id = $2, addrs = $3, flight_addr = $4, clickhouse_addr = $5,
				agent_version = $6, schema_version = $7, last_seen = now(), updated_at = now()
			WHERE name = $1 RETURNING `+clusterColumns, r.Name, r.PeerID, r.Addrs, r.FlightAddr, r.ClickHouseAddr, r.AgentVersion, r.SchemaVersion)
		c, err = scanCluster(row)
		if err != nil {
			return fmt.Errorf("write cluster %q: %w", r.Name, err)
		}
		if existing == nil {
			if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ClusterChannel, r.Name); err != nil {
				return fmt.Errorf("announce enrollment of %q: %w", r.Name, err)
			}
		}
		return nil
	})
	return c, err
}

// redeem checks and consumes the enrollment token of a first registration.
func redeem(ctx context.Context, tx pgx.Tx, r Registration) error {
	if r.Token == "" {
		return fmt.Errorf("%w: %q has not registered yet, so its first registration needs the enrollment token", ErrTokenInvalid, r.Name)
	}
	var other string
	err := tx.QueryRow(ctx, `SELECT name FROM clusters WHERE peer_id = $1`, r.PeerID).Scan(&other)
	if err == nil {
		return fmt.Errorf("%w: peer %s is already registered as %q", ErrPeerMismatch, r.PeerID, other)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("look up peer %s: %w", r.PeerID, err)
	}
	hash := sha256.Sum256([]byte(r.Token))
	var (
		cluster string
		expired bool
		usedAt  *time.Time
	)
	err = tx.QueryRow(ctx, `SELECT cluster, expires_at <= now(), used_at FROM enrollment_tokens WHERE token_hash = $1 FOR UPDATE`,
		hash[:]).Scan(&cluster, &expired, &usedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows), err == nil && cluster != r.Name:
		return ErrTokenInvalid
	case err != nil:
		return fmt.Errorf("look up enrollment token: %w", err)
	case usedAt != nil:
		return ErrTokenUsed
	case expired:
		return ErrTokenExpired
	}
	if _, err := tx.Exec(ctx, `UPDATE enrollment_tokens SET used_at = now(), used_by = $2 WHERE token_hash = $1`, hash[:], r.PeerID); err != nil {
		return fmt.Errorf("redeem enrollment token: %w", err)
	}
	return nil
}

const clusterColumns = `name, coalesce(peer_id, ''), addrs, flight_addr, clickhouse_addr, agent_version,
	schema_version, status, health, health_since, last_seen, registered_at, schema_drift_version, schema_drift,
	health_reason, coalesce(health_latency_ms, 0)`

func scanCluster(row pgx.Row) (Cluster, error) {
	var (
		c            Cluster
		lastSeen     *time.Time
		driftVersion *int
		driftReason  string
	)
	err := row.Scan(&c.Name, &c.PeerID, &c.Addrs, &c.FlightAddr, &c.ClickHouseAddr, &c.AgentVersion,
		&c.SchemaVersion, &c.Status, &c.Health, &c.HealthSince, &lastSeen, &c.RegisteredAt, &driftVersion, &driftReason,
		&c.HealthReason, &c.HealthLatencyMS)
	c.LastSeen = nullTime(lastSeen)
	if driftVersion != nil {
		c.Drift = &Drift{Version: *driftVersion, Reason: driftReason}
	}
	c.HealthSince, c.RegisteredAt = c.HealthSince.UTC(), c.RegisteredAt.UTC()
	return c, err
}

// Clusters lists the registry, by name. With activeOnly, revoked nodes are left out.
func (s *Store) Clusters(ctx context.Context, activeOnly bool) ([]Cluster, error) {
	q := `SELECT ` + clusterColumns + ` FROM clusters`
	if activeOnly {
		q += ` WHERE status = 'active' AND peer_id IS NOT NULL`
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	defer rows.Close()
	out := []Cluster{}
	for rows.Next() {
		c, err := scanCluster(rows)
		if err != nil {
			return nil, fmt.Errorf("scan cluster: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	return out, nil
}

// Cluster returns one cluster by name, or ErrNotFound.
func (s *Store) Cluster(ctx context.Context, name string) (Cluster, error) {
	c, err := scanCluster(s.pool.QueryRow(ctx, `SELECT `+clusterColumns+` FROM clusters WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return Cluster{}, fmt.Errorf("cluster %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Cluster{}, fmt.Errorf("read cluster %q: %w", name, err)
	}
	return c, nil
}

// AppliedVersion is one migration a node reported applied.
type AppliedVersion struct {
	Version  int
	Checksum string
}

// RecordSchemaVersion stores the version a node reported after a sync, and the
// migrations it applied, and marks the node seen. Recording the same
// migration again (a retried activity) changes nothing.
func (s *Store) RecordSchemaVersion(ctx context.Context, cluster string, version int, applied []AppliedVersion, workflowID string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE clusters SET schema_version = $2, schema_drift_version = NULL, schema_drift = '',
			last_seen = now(), updated_at = now() WHERE name = $1`, cluster, version)
		if err != nil {
			return fmt.Errorf("record schema version of %q: %w", cluster, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("record schema version of %q: %w", cluster, ErrNotFound)
		}
		for _, a := range applied {
			_, err := tx.Exec(ctx, `INSERT INTO cluster_schema_versions (cluster, version, checksum, workflow_id)
				VALUES ($1, $2, $3, $4) ON CONFLICT (cluster, version) DO NOTHING`, cluster, a.Version, a.Checksum, workflowID)
			if err != nil {
				return fmt.Errorf("record migration %d of %q: %w", a.Version, cluster, err)
			}
		}
		return nil
	})
}

// SchemaHistory returns the versions recorded for a cluster, in order.
func (s *Store) SchemaHistory(ctx context.Context, cluster string) ([]AppliedVersion, error) {
	rows, err := s.pool.Query(ctx, `SELECT version, checksum FROM cluster_schema_versions WHERE cluster = $1 ORDER BY version`, cluster)
	if err != nil {
		return nil, fmt.Errorf("read schema history of %q: %w", cluster, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AppliedVersion, error) {
		var a AppliedVersion
		return a, r.Scan(&a.Version, &a.Checksum)
	})
	if err != nil {
		return nil, fmt.Errorf("read schema history of %q: %w", cluster, err)
	}
	return out, nil
}

// MarkSeen records that a node answered, and its reported schema version.
func (s *Store) MarkSeen(ctx context.Context, cluster string, schemaVersion int) error {
	_, err := s.pool.Exec(ctx, `UPDATE clusters SET last_seen = now(), schema_version = $2, updated_at = now() WHERE name = $1`, cluster, schemaVersion)
	if err != nil {
		return fmt.Errorf("mark %q seen: %w", cluster, err)
	}
	return nil
}
