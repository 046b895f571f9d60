package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/syndb/federation/internal/domain"
)

// Registration is what a node tells the hub when it registers.
type Registration struct {
	Name           string
	PeerID         string
	Addrs          []string
	FlightAddr     string
	ClickHouseAddr string
	// ClickHouseDatabase is the database of that ClickHouse holding the
	// node's warehouse (an identifier, checked by the caller).
	ClickHouseDatabase string
	// FlightCertSHA256 is the pin of the node's Flight TLS certificate, in
	// lowercase hex ("" for a plaintext listener).
	FlightCertSHA256 string
	AgentVersion     string
	SchemaVersion    int
	// Token is the enrollment token; needed only until the name is bound.
	Token string
	// CheckData, when set, is called once the peer is known to own the
	// name, with the data host an admin set at enrolment ("" if none); an
	// error refuses the registration and changes nothing.
	CheckData func(dataHost string) error
}

// Register writes a node's registration. The name must have been enrolled
// (CreateCluster). The first registration presents the enrollment token and
// binds the name to the node's peer ID; later ones come from that peer and
// need no token. Anything else is refused and nothing changes. A refusal
// tells the asking peer nothing about other peers or names: a name that is
// not enrolled, revoked, or bound to another peer is ErrTokenInvalid like a
// wrong token (the wrapped detail, for the hub's log, says which).
func (s *Store) Register(ctx context.Context, r Registration) (domain.Cluster, error) {
	var c domain.Cluster
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			existing *string
			status   string
			dataHost string
		)
		err := tx.QueryRow(ctx, `SELECT peer_id, status, data_host FROM clusters WHERE name = $1 FOR UPDATE`, r.Name).
			Scan(&existing, &status, &dataHost)
		found := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("look up cluster %q: %w", r.Name, err)
		}
		owned := found && status == "active" && existing != nil && *existing == r.PeerID
		if !owned {
			var why string
			switch {
			case !found:
				why = "name not enrolled"
			case status == "revoked":
				why = "name revoked"
			case existing != nil:
				why = "name bound to peer " + *existing
			}
			if err := redeem(ctx, tx, r, why); err != nil {
				return err
			}
		}
		if r.CheckData != nil {
			if err := r.CheckData(dataHost); err != nil {
				return err
			}
		}
		row := tx.QueryRow(ctx, `UPDATE clusters SET peer_id = $2, addrs = $3, flight_addr = $4, clickhouse_addr = $5,
				agent_version = $6, schema_version = $7, clickhouse_database = $8, flight_cert_sha256 = $9, last_seen = now(),
				updated_at = now()
			WHERE name = $1 RETURNING `+clusterColumns, r.Name, r.PeerID, r.Addrs, r.FlightAddr, r.ClickHouseAddr, r.AgentVersion,
			r.SchemaVersion, r.ClickHouseDatabase, r.FlightCertSHA256)
		c, err = scanCluster(row)
		if err != nil {
			return fmt.Errorf("write cluster %q: %w", r.Name, err)
		}
		if !owned {
			if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ClusterChannel, r.Name); err != nil {
				return fmt.Errorf("announce enrollment of %q: %w", r.Name, err)
			}
		}
		return nil
	})
	return c, err
}

// redeem checks and consumes the enrollment token of a first registration.
// closed, when not empty, says why the name cannot be bound whatever the
// token (it is kept from the asker, who learns only that its token is not
// valid, unless the token is its own, used or expired).
func redeem(ctx context.Context, tx pgx.Tx, r Registration, closed string) error {
	if r.Token == "" {
		return fmt.Errorf("%w (no token presented for %q; %s)", domain.ErrTokenInvalid, r.Name, orOpen(closed))
	}
	hash := sha256.Sum256([]byte(r.Token))
	var (
		cluster string
		expired bool
		usedAt  *time.Time
	)
	err := tx.QueryRow(ctx, `SELECT cluster, expires_at <= now(), used_at FROM enrollment_tokens WHERE token_hash = $1 FOR UPDATE`,
		hash[:]).Scan(&cluster, &expired, &usedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w (unknown token for %q; %s)", domain.ErrTokenInvalid, r.Name, orOpen(closed))
	case err != nil:
		return fmt.Errorf("look up enrollment token: %w", err)
	case cluster != r.Name:
		return fmt.Errorf("%w (token of %q presented for %q)", domain.ErrTokenInvalid, cluster, r.Name)
	case usedAt != nil:
		return domain.ErrTokenUsed
	case expired:
		return domain.ErrTokenExpired
	case closed != "":
		return fmt.Errorf("%w (%q: %s)", domain.ErrTokenInvalid, r.Name, closed)
	}
	var other string
	err = tx.QueryRow(ctx, `SELECT name FROM clusters WHERE peer_id = $1`, r.PeerID).Scan(&other)
	if err == nil {
		return fmt.Errorf("%w: peer %s is %q", domain.ErrPeerMismatch, r.PeerID, other)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("look up peer %s: %w", r.PeerID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE enrollment_tokens SET used_at = now(), used_by = $2 WHERE token_hash = $1`, hash[:], r.PeerID); err != nil {
		return fmt.Errorf("redeem enrollment token: %w", err)
	}
	return nil
}

func orOpen(closed string) string {
	if closed == "" {
		return "name open for enrolment"
	}
	return closed
}

var clusterColumns = `name, coalesce(peer_id, ''), addrs, flight_addr, clickhouse_addr, clickhouse_database, agent_version,
	schema_version, status, health, health_since, last_seen, registered_at, schema_drift_version, schema_drift,
	health_reason, coalesce(health_latency_ms, 0), flight_cert_sha256, health_path, health_transport, ` + benchmarkFigure

// benchmarkFigure is a cluster row's recent benchmark figure
// (domain.Cluster.BenchmarkMS): the median of its latest successful
// aggregates within the window, 0 without any.
var benchmarkFigure = fmt.Sprintf(`coalesce((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY r.value)
	FROM (SELECT b.value FROM benchmarks b WHERE b.node = clusters.name AND b.kind = '%s' AND b.ok
		AND b.measured_at > now() - make_interval(secs => %d) ORDER BY b.measured_at DESC, b.id DESC LIMIT %d) r), 0)`,
	domain.BenchmarkAggregate, int(domain.BenchmarkFigureWindow.Seconds()), domain.BenchmarkFigureSamples)

func scanCluster(row pgx.Row) (domain.Cluster, error) {
	var (
		c            domain.Cluster
		lastSeen     *time.Time
		driftVersion *int
		driftReason  string
	)
	err := row.Scan(&c.Name, &c.PeerID, &c.Addrs, &c.FlightAddr, &c.ClickHouseAddr, &c.ClickHouseDatabase, &c.AgentVersion,
		&c.SchemaVersion, &c.Status, &c.Health, &c.HealthSince, &lastSeen, &c.RegisteredAt, &driftVersion, &driftReason,
		&c.HealthReason, &c.HealthLatencyMS, &c.FlightCertSHA256, &c.HealthPath, &c.HealthTransport, &c.BenchmarkMS)
	c.LastSeen = nullTime(lastSeen)
	if driftVersion != nil {
		c.Drift = &domain.Drift{Version: *driftVersion, Reason: driftReason}
	}
	c.HealthSince, c.RegisteredAt = c.HealthSince.UTC(), c.RegisteredAt.UTC()
	return c, err
}

// Clusters lists the registry, by name. With activeOnly, revoked nodes are left out.
func (s *Store) Clusters(ctx context.Context, activeOnly bool) ([]domain.Cluster, error) {
	q := `SELECT ` + clusterColumns + ` FROM clusters`
	if activeOnly {
		q += ` WHERE status = 'active' AND peer_id IS NOT NULL`
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	defer rows.Close()
	out := []domain.Cluster{}
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
func (s *Store) Cluster(ctx context.Context, name string) (domain.Cluster, error) {
	c, err := scanCluster(s.pool.QueryRow(ctx, `SELECT `+clusterColumns+` FROM clusters WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Cluster{}, fmt.Errorf("cluster %q: %w", name, domain.ErrNotFound)
	}
	if err != nil {
		return domain.Cluster{}, fmt.Errorf("read cluster %q: %w", name, err)
	}
	return c, nil
}

// RecordSchemaVersion stores the version a node reported after a sync, and the
// migrations it applied, and marks the node seen. Recording the same
// migration again (a retried activity) changes nothing.
func (s *Store) RecordSchemaVersion(ctx context.Context, cluster string, version int, applied []domain.AppliedVersion, workflowID string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE clusters SET schema_version = $2, schema_drift_version = NULL, schema_drift = '',
			last_seen = now(), updated_at = now() WHERE name = $1`, cluster, version)
		if err != nil {
			return fmt.Errorf("record schema version of %q: %w", cluster, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("record schema version of %q: %w", cluster, domain.ErrNotFound)
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
func (s *Store) SchemaHistory(ctx context.Context, cluster string) ([]domain.AppliedVersion, error) {
	rows, err := s.pool.Query(ctx, `SELECT version, checksum FROM cluster_schema_versions WHERE cluster = $1 ORDER BY version`, cluster)
	if err != nil {
		return nil, fmt.Errorf("read schema history of %q: %w", cluster, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.AppliedVersion, error) {
		var a domain.AppliedVersion
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
