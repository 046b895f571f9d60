package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/syndb/federation/internal/domain"
)

// jobSelect reads jobs (aliased j) with their owner.
const jobSelect = `SELECT j.id, j.kind, j.state, j.spec, j.workflow_id, coalesce(j.error, ''), j.nodes, j.result, j.result_object,
	j.created_at, j.started_at, j.finished_at, j.created_by, coalesce(k.name, ''), a.name
	FROM jobs j LEFT JOIN api_keys k ON k.id = j.created_by LEFT JOIN accounts a ON a.id = j.owner_account_id`

func scanJob(row pgx.Row) (domain.Job, error) {
	var (
		j       domain.Job
		result  []byte
		keyID   *int64
		keyName string
		account *string
	)
	err := row.Scan(&j.ID, &j.Kind, &j.State, &j.Spec, &j.WorkflowID, &j.Error, &j.Nodes, &result, &j.ResultObject,
		&j.CreatedAt, &j.StartedAt, &j.FinishedAt, &keyID, &keyName, &account)
	if len(result) > 0 {
		j.Result = result
	}
	if keyID != nil || account != nil {
		j.Owner = &domain.JobOwner{KeyName: keyName}
		if keyID != nil {
			j.Owner.KeyID = *keyID
		}
		if account != nil {
			j.Owner.Account = *account
		}
	}
	j.CreatedAt = j.CreatedAt.UTC()
	return j, err
}

// CreateJob queues a job (state pending) run by workflowID, owned by the
// API key createdBy (none when 0) and its account.
func (s *Store) CreateJob(ctx context.Context, id uuid.UUID, kind string, spec json.RawMessage, workflowID string, createdBy int64) (domain.Job, error) {
	var by *int64
	if createdBy > 0 {
		by = &createdBy
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO jobs (id, kind, spec, workflow_id, created_by, owner_account_id)
		VALUES ($1, $2, $3, $4, $5, (SELECT account_id FROM api_keys WHERE id = $5))`, id, kind, spec, workflowID, by)
	if err != nil {
		return domain.Job{}, fmt.Errorf("create job: %w", err)
	}
	return s.Job(ctx, id)
}

// Job returns one job, or ErrNotFound.
func (s *Store) Job(ctx context.Context, id uuid.UUID) (domain.Job, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, jobSelect+` WHERE j.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Job{}, fmt.Errorf("job %s: %w", id, domain.ErrNotFound)
	}
	if err != nil {
		return domain.Job{}, fmt.Errorf("read job %s: %w", id, err)
	}
	return j, nil
}

// Jobs lists jobs, newest first, in state (any when empty).
func (s *Store) Jobs(ctx context.Context, state string, limit, offset int) ([]domain.Job, error) {
	rows, err := s.pool.Query(ctx, jobSelect+` WHERE ($1 = '' OR j.state = $1)
		ORDER BY j.created_at DESC, j.id LIMIT $2 OFFSET $3`, state, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Job, error) { return scanJob(r) })
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	if out == nil {
		out = []domain.Job{}
	}
	return out, nil
}

// StartJob marks a job running (once: a retried call changes nothing).
func (s *Store) StartJob(ctx context.Context, id uuid.UUID) error {
	_, err := s.pool.Exec(ctx, `UPDATE jobs SET state = 'running', started_at = coalesce(started_at, now()), updated_at = now()
		WHERE id = $1 AND state = 'pending'`, id)
	if err != nil {
		return fmt.Errorf("start job %s: %w", id, err)
	}
	return nil
}

// JobOutcome is how a job ended.
type JobOutcome struct {
	State        string
	Nodes        json.RawMessage
	Result       json.RawMessage
	ResultObject string
	Error        string
}

// FinishJob records a job's end. A finished job stays as it ended.
func (s *Store) FinishJob(ctx context.Context, id uuid.UUID, o JobOutcome) error {
	var result any
	if len(o.Result) > 0 {
		result = o.Result
	}
	nodes := o.Nodes
	if len(nodes) == 0 {
		nodes = json.RawMessage("[]")
	}
	var errText *string
	if o.Error != "" {
		errText = &o.Error
	}
	_, err := s.pool.Exec(ctx, `UPDATE jobs SET state = $2, nodes = $3, result = $4, result_object = $5, error = $6,
			started_at = coalesce(started_at, now()), finished_at = now(), updated_at = now()
		WHERE id = $1 AND state IN ('pending', 'running')`, id, o.State, nodes, result, o.ResultObject, errText)
	if err != nil {
		return fmt.Errorf("finish job %s: %w", id, err)
	}
	return nil
}
