package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Outcomes of an audited call.
const (
	AuditOK      = "ok"      // answered 1xx..3xx (a query that failed while streaming is failed)
	AuditRefused = "refused" // answered 4xx: no key, a lower role, a limit, a bad request
	AuditFailed  = "failed"  // answered 5xx, or failed after its answer began
)

// AuditOutcomes lists every outcome of an audited call.
var AuditOutcomes = []string{AuditOK, AuditRefused, AuditFailed}

// AuditEntry is one audited API call (a row of audit_log).
type AuditEntry struct {
	ID int64     `json:"id"`
	At time.Time `json:"at"`
	// KeyID is 0 for a call that presented no valid key.
	KeyID   int64  `json:"key_id,omitempty"`
	KeyName string `json:"key_name"`
	Account string `json:"account"`
	Role    string `json:"role"`
	Method  string `json:"method"`
	// Route is the route's pattern (/v1/jobs/:id).
	Route string `json:"route"`
	// Target is what the call was about: its path parameters, the workflow
	// or job it started, the query's ID.
	Target     string `json:"target"`
	Status     int    `json:"status"`
	Outcome    string `json:"outcome"`
	DurationMS int64  `json:"duration_ms"`
	// Client is the caller's address.
	Client    string `json:"client"`
	RequestID string `json:"request_id"`
}

// AuditFilter selects a page of the audit log, newest first.
type AuditFilter struct {
	// KeyID, Account, Route and Outcome keep the entries that match (any
	// when zero).
	KeyID   int64
	Account string
	Route   string
	Outcome string
	// Since and Until bound the calls' times: Since <= at < Until (open
	// when zero).
	Since, Until time.Time
	// Before starts the page below this ID (from the newest when 0).
	Before int64
	Limit  int
}

var auditColumns = []string{"at", "key_id", "key_name", "account", "role", "method", "route", "target", "status",
	"outcome", "duration_ms", "client", "request_id"}

// RecordAudit writes entries in one COPY.
func (s *Store) RecordAudit(ctx context.Context, entries []AuditEntry) error {
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"audit_log"}, auditColumns, pgx.CopyFromSlice(len(entries),
		func(i int) ([]any, error) {
			e := entries[i]
			var key *int64
			if e.KeyID != 0 {
				key = &e.KeyID
			}
			return []any{e.At, key, e.KeyName, e.Account, e.Role, e.Method, e.Route, e.Target, e.Status,
				e.Outcome, e.DurationMS, e.Client, e.RequestID}, nil
		}))
	if err != nil {
		return fmt.Errorf("record %d audit entries: %w", len(entries), err)
	}
	return nil
}

// AuditEntries returns a page of the audit log, newest first.
func (s *Store) AuditEntries(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	var since, until *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	if !f.Until.IsZero() {
		until = &f.Until
	}
	rows, err := s.pool.Query(ctx, `SELECT id, at, coalesce(key_id, 0), key_name, account, role, method, route, target,
			status, outcome, duration_ms, client, request_id
		FROM audit_log
		WHERE ($1 = 0 OR key_id = $1) AND ($2 = '' OR account = $2) AND ($3 = '' OR route = $3) AND ($4 = '' OR outcome = $4)
			AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6) AND ($7 = 0 OR id < $7)
		ORDER BY id DESC LIMIT $8`,
		f.KeyID, f.Account, f.Route, f.Outcome, since, until, f.Before, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := r.Scan(&e.ID, &e.At, &e.KeyID, &e.KeyName, &e.Account, &e.Role, &e.Method, &e.Route, &e.Target,
			&e.Status, &e.Outcome, &e.DurationMS, &e.Client, &e.RequestID)
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	if out == nil {
		out = []AuditEntry{}
	}
	return out, nil
}
