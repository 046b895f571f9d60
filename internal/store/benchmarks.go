package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syndb/federation/internal/domain"
)

// BenchmarkFilter selects benchmark rows, newest first.
type BenchmarkFilter struct {
	// Node, Kind and RunID, when set, keep only the rows of that node, kind
	// and run.
	Node  string
	Kind  domain.BenchmarkKind
	RunID string
	// Limit is the page's size.
	Limit int
	// After, when set, starts the page after that row (the last row of the
	// previous page).
	After *BenchmarkCursor
}

// BenchmarkCursor is where a page of benchmarks ends: its last row's time
// and ID.
type BenchmarkCursor struct {
	MeasuredAt time.Time
	ID         int64
}

// BenchmarkRetention is how long benchmark rows are kept: routing reads
// the last day, the trend a month.
const BenchmarkRetention = 30 * 24 * time.Hour

// RecordBenchmarks writes rows in one statement. A row of a run, node and
// kind already written is left as it is, so a retried write records
// nothing twice. A row's unit is its kind's.
func (s *Store) RecordBenchmarks(ctx context.Context, rows []domain.Benchmark) error {
	if len(rows) == 0 {
		return nil
	}
	var (
		wf, run, node, kind, unit, path, errText []string
		value                                    []*float64
		ok                                       []bool
		at                                       []time.Time
	)
	for _, r := range rows {
		wf, run, node = append(wf, r.WorkflowID), append(run, r.RunID), append(node, r.Node)
		kind, unit, path = append(kind, string(r.Kind)), append(unit, r.Kind.Unit()), append(path, r.Path)
		value, ok = append(value, r.Value), append(ok, r.OK)
		errText, at = append(errText, r.Error), append(at, r.MeasuredAt)
	}
	// A row of a node no longer in the registry is dropped, not allowed
	// to fail the others; rows past BenchmarkRetention go in the same
	// transaction, so the table stays bounded.
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO benchmarks (workflow_id, run_id, node, kind, value, unit, path, ok, error, measured_at)
			SELECT u.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[], $7::text[], $8::bool[],
				$9::text[], $10::timestamptz[]) AS u(workflow_id, run_id, node, kind, value, unit, path, ok, error, measured_at)
			WHERE EXISTS (SELECT 1 FROM clusters c WHERE c.name = u.node)
			ON CONFLICT (run_id, node, kind) DO NOTHING`, wf, run, node, kind, value, unit, path, ok, errText, at)
		if err != nil {
			return fmt.Errorf("record %d benchmarks: %w", len(rows), err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM benchmarks WHERE measured_at < now() - $1::interval`,
			fmt.Sprintf("%d seconds", int64(BenchmarkRetention.Seconds()))); err != nil {
			return fmt.Errorf("drop old benchmarks: %w", err)
		}
		return nil
	})
}

// Benchmarks lists benchmark rows, newest first (by measurement, then ID),
// as f selects them.
func (s *Store) Benchmarks(ctx context.Context, f BenchmarkFilter) ([]domain.Benchmark, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Node != "" {
		where = append(where, "node = "+arg(f.Node))
	}
	if f.Kind != "" {
		where = append(where, "kind = "+arg(string(f.Kind)))
	}
	if f.RunID != "" {
		where = append(where, "run_id = "+arg(f.RunID))
	}
	if f.After != nil {
		where = append(where, fmt.Sprintf("(measured_at, id) < (%s, %s)", arg(f.After.MeasuredAt), arg(f.After.ID)))
	}
	q := `SELECT id, workflow_id, run_id, node, kind, value, unit, path, ok, error, measured_at FROM benchmarks`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY measured_at DESC, id DESC LIMIT " + arg(f.Limit)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list benchmarks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Benchmark, error) {
		var b domain.Benchmark
		var kind string
		err := row.Scan(&b.ID, &b.WorkflowID, &b.RunID, &b.Node, &kind, &b.Value, &b.Unit, &b.Path, &b.OK, &b.Error, &b.MeasuredAt)
		b.Kind, b.MeasuredAt = domain.BenchmarkKind(kind), b.MeasuredAt.UTC()
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("list benchmarks: %w", err)
	}
	return out, nil
}
