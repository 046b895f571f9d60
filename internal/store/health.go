package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RegistryChannel is the PostgreSQL NOTIFY channel on which every change to
// the clusters table is announced (by a trigger), for registry snapshots.
const RegistryChannel = "syndb_registry"

// HealthTransition is one audited change of a node's health state.
type HealthTransition struct {
	ID        int64     `json:"id"`
	Cluster   string    `json:"cluster"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Reason    string    `json:"reason"`
	LatencyMS float64   `json:"latency_ms"`
	At        time.Time `json:"at"`
}

// PingResult is one node's latest ping, as a health sweep saw it.
type PingResult struct {
	Cluster       string
	Answered      bool
	Latency       time.Duration
	SchemaVersion int
	// Path is the path of the hub's connection to the node when it
	// answered (direct, hole-punched, relayed), and Transport its
	// transport (quic-v1, tcp); "" keeps the last one.
	Path, Transport string
}

// RecordHealth writes a health sweep in one transaction: the transitions
// (each audited, and applied only if the node is still in its From state,
// so a retried write records nothing twice) and every node's latest ping
// (round trip; last seen, schema version when it answered). It returns
// the transitions it recorded.
func (s *Store) RecordHealth(ctx context.Context, transitions []HealthTransition, pings []PingResult) ([]HealthTransition, error) {
	var recorded []HealthTransition
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		recorded = recorded[:0]
		for _, t := range transitions {
			tag, err := tx.Exec(ctx, `UPDATE clusters SET health = $3, health_since = $4, health_reason = $5, updated_at = now()
				WHERE name = $1 AND health = $2`, t.Cluster, t.From, t.To, t.At, t.Reason)
			if err != nil {
				return fmt.Errorf("set health of %q: %w", t.Cluster, err)
			}
			if tag.RowsAffected() == 0 {
				continue // already recorded, or the node is gone
			}
			err = tx.QueryRow(ctx, `INSERT INTO health_transitions (cluster, from_state, to_state, reason, latency_ms, at)
				VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, t.Cluster, t.From, t.To, t.Reason, t.LatencyMS, t.At).Scan(&t.ID)
			if err != nil {
				return fmt.Errorf("audit health of %q: %w", t.Cluster, err)
			}
			recorded = append(recorded, t)
		}
		if len(pings) == 0 {
			return nil
		}
		names := make([]string, len(pings))
		ms := make([]float64, len(pings))
		answered := make([]bool, len(pings))
		versions := make([]int32, len(pings))
		paths := make([]string, len(pings))
		transports := make([]string, len(pings))
		for i, p := range pings {
			names[i], ms[i], answered[i], versions[i] = p.Cluster, float64(p.Latency.Microseconds())/1000, p.Answered, int32(p.SchemaVersion)
			paths[i], transports[i] = p.Path, p.Transport
		}
		_, err := tx.Exec(ctx, `UPDATE clusters c SET
				health_latency_ms = CASE WHEN u.answered THEN u.ms ELSE c.health_latency_ms END,
				last_seen = CASE WHEN u.answered THEN now() ELSE c.last_seen END,
				schema_version = CASE WHEN u.answered THEN u.version ELSE c.schema_version END,
				health_path = CASE WHEN u.answered AND u.path <> '' THEN u.path ELSE c.health_path END,
				health_transport = CASE WHEN u.answered AND u.transport <> '' THEN u.transport ELSE c.health_transport END
			FROM unnest($1::text[], $2::float8[], $3::bool[], $4::int4[], $5::text[], $6::text[])
				AS u(name, ms, answered, version, path, transport)
			WHERE c.name = u.name`, names, ms, answered, versions, paths, transports)
		if err != nil {
			return fmt.Errorf("record pings: %w", err)
		}
		return nil
	})
	return recorded, err
}

// HealthHistory returns a node's audited transitions, newest first, at
// most limit of them with IDs below before (0: from the newest).
func (s *Store) HealthHistory(ctx context.Context, cluster string, limit int, before int64) ([]HealthTransition, error) {
	if _, err := s.Cluster(ctx, cluster); err != nil {
		return nil, err
	}
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.pool.Query(ctx, `SELECT id, cluster, from_state, to_state, reason, coalesce(latency_ms, 0), at
		FROM health_transitions WHERE cluster = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, cluster, before, limit)
	if err != nil {
		return nil, fmt.Errorf("read health history of %q: %w", cluster, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HealthTransition, error) {
		var t HealthTransition
		err := r.Scan(&t.ID, &t.Cluster, &t.From, &t.To, &t.Reason, &t.LatencyMS, &t.At)
		t.At = t.At.UTC()
		return t, err
	})
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("read health history of %q: %w", cluster, err)
	}
	if out == nil {
		out = []HealthTransition{}
	}
	return out, nil
}
