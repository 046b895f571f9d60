package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/syndb/federation/internal/domain"
)

// Outcomes of a federated query in its history.
const (
	QueryRunning   = "running"
	QueryOK        = "ok"
	QueryFailed    = "failed"
	QueryCancelled = "cancelled"
	QueryRefused   = "refused"
)

// QueryOutcomes lists every outcome of a query.
var QueryOutcomes = []string{QueryRunning, QueryOK, QueryFailed, QueryCancelled, QueryRefused}

// Query is a federated query's row in the history.
type Query struct {
	ID      uuid.UUID `json:"id"`
	KeyID   int64     `json:"key_id,omitempty"`
	KeyName string    `json:"key_name"`
	Account string    `json:"account"`
	Role    string    `json:"role"`
	SQL     string    `json:"sql"`
	// Nodes are the nodes the query read from.
	Nodes      []string `json:"nodes"`
	Rows       int64    `json:"rows"`
	BytesRead  int64    `json:"bytes_read"`
	DurationMS int64    `json:"duration_ms"`
	Outcome    string   `json:"outcome"`
	// Error is the message the client got, without credentials.
	Error             string     `json:"error,omitempty"`
	CancelRequestedAt *time.Time `json:"cancel_requested_at,omitempty"`
	StartedAt         time.Time  `json:"started_at"`
	FinishedAt        *time.Time `json:"finished_at,omitempty"`
}

// QueryRecord is what the API records of a query: at its start (Outcome
// running) and at its end.
type QueryRecord struct {
	ID        uuid.UUID
	By        Principal
	SQL       string
	Nodes     []string
	Rows      int64
	BytesRead int64
	Duration  time.Duration
	Outcome   string
	Error     string
	StartedAt time.Time
}

// QueryCursor is where a page of the history ends: the last row's start
// and ID.
type QueryCursor struct {
	StartedAt time.Time
	ID        uuid.UUID
}

// QueryFilter selects a page of the history, newest first.
type QueryFilter struct {
	// KeyID keeps the queries of one API key (every key when 0).
	KeyID int64
	// Outcome keeps the queries of one outcome (any when empty).
	Outcome string
	Limit   int
	// After starts the page after this row (from the newest when nil).
	After *QueryCursor
}

const querySelect = `SELECT id, coalesce(key_id, 0), key_name, account, role, sql, nodes, rows, bytes_read, duration_ms,
	outcome, coalesce(error, ''), cancel_requested_at, started_at, finished_at FROM queries`

func scanQuery(row pgx.Row) (Query, error) {
	var q Query
	err := row.Scan(&q.ID, &q.KeyID, &q.KeyName, &q.Account, &q.Role, &q.SQL, &q.Nodes, &q.Rows, &q.BytesRead,
		&q.DurationMS, &q.Outcome, &q.Error, &q.CancelRequestedAt, &q.StartedAt, &q.FinishedAt)
	q.StartedAt = q.StartedAt.UTC()
	if q.Nodes == nil {
		q.Nodes = []string{}
	}
	return q, err
}

// queryUpsert writes a query's row. A row that already ended is never
// changed, so the start and the end may arrive in either order; an end that
// failed after a cancel was requested is recorded cancelled.
const queryUpsert = `INSERT INTO queries (id, key_id, key_name, account, role, sql, nodes, rows, bytes_read, duration_ms,
		outcome, error, started_at, finished_at)
	VALUES ($1, (SELECT id FROM api_keys WHERE id = $2), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
		CASE WHEN $11 = 'running' THEN NULL ELSE now() END)
	ON CONFLICT (id) DO UPDATE SET nodes = EXCLUDED.nodes, rows = EXCLUDED.rows, bytes_read = EXCLUDED.bytes_read,
		duration_ms = EXCLUDED.duration_ms, error = EXCLUDED.error, finished_at = EXCLUDED.finished_at,
		outcome = CASE WHEN queries.cancel_requested_at IS NOT NULL AND EXCLUDED.outcome = 'failed'
			THEN 'cancelled' ELSE EXCLUDED.outcome END
	WHERE queries.outcome = 'running' AND EXCLUDED.outcome <> 'running'`

// RecordQuery writes r: a query starting (r.Outcome running) or ending.
func (s *Store) RecordQuery(ctx context.Context, r QueryRecord) error {
	nodes := r.Nodes
	if nodes == nil {
		nodes = []string{}
	}
	var errText *string
	if r.Error != "" {
		errText = &r.Error
	}
	_, err := s.pool.Exec(ctx, queryUpsert, r.ID, r.By.KeyID, r.By.KeyName, r.By.Account, r.By.Role, r.SQL, nodes,
		r.Rows, r.BytesRead, r.Duration.Milliseconds(), r.Outcome, errText, r.StartedAt)
	if err != nil {
		return fmt.Errorf("record query %s (%s): %w", r.ID, r.Outcome, err)
	}
	return nil
}

// Query returns one query's row, or ErrNotFound.
func (s *Store) Query(ctx context.Context, id uuid.UUID) (Query, error) {
	q, err := scanQuery(s.pool.QueryRow(ctx, querySelect+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Query{}, fmt.Errorf("query %s: %w", id, domain.ErrNotFound)
	}
	if err != nil {
		return Query{}, fmt.Errorf("read query %s: %w", id, err)
	}
	return q, nil
}

// Queries returns a page of the history, newest first.
func (s *Store) Queries(ctx context.Context, f QueryFilter) ([]Query, error) {
	after := QueryCursor{StartedAt: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}
	if f.After != nil {
		after = *f.After
	}
	rows, err := s.pool.Query(ctx, querySelect+` WHERE ($1 = 0 OR key_id = $1) AND ($2 = '' OR outcome = $2)
		AND (started_at, id) < ($3, $4) ORDER BY started_at DESC, id DESC LIMIT $5`,
		f.KeyID, f.Outcome, after.StartedAt, after.ID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list queries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Query, error) { return scanQuery(r) })
	if err != nil {
		return nil, fmt.Errorf("list queries: %w", err)
	}
	if out == nil {
		out = []Query{}
	}
	return out, nil
}

// RequestQueryCancel marks a running query cancel-requested (once) and
// returns its row: a row whose outcome is no longer running was not marked.
// An unknown id is ErrNotFound.
func (s *Store) RequestQueryCancel(ctx context.Context, id uuid.UUID) (Query, error) {
	_, err := s.pool.Exec(ctx, `UPDATE queries SET cancel_requested_at = coalesce(cancel_requested_at, now())
		WHERE id = $1 AND outcome = 'running'`, id)
	if err != nil {
		return Query{}, fmt.Errorf("request cancel of query %s: %w", id, err)
	}
	return s.Query(ctx, id)
}
