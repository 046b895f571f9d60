package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/syndb/federation/internal/domain"
)

// Dataset search page sizes.
const (
	DefaultDatasetLimit = 50
	MaxDatasetLimit     = 1000
)

// TableRows is a dataset's row count in one compartment table.
type TableRows struct {
	Table string `json:"table"`
	Rows  uint64 `json:"rows"`
}

// CatalogDataset is one dataset as its node reports it.
type CatalogDataset struct {
	ID                   uuid.UUID
	Name                 string
	Owner                string
	Animal               string
	BrainRegion          string
	GeneticManipulations []string
	Microscopy           string
	PublicationDOI       string
	Notes                string
	CreatedAt            time.Time
	Tables               []TableRows
}

// Dataset is one dataset of the hub's catalog.
type Dataset struct {
	Node                 string      `json:"node"`
	DatasetID            string      `json:"dataset_id"`
	Name                 string      `json:"name"`
	Owner                string      `json:"owner"`
	Animal               string      `json:"animal"`
	BrainRegion          string      `json:"brain_region"`
	GeneticManipulations []string    `json:"genetic_manipulations"`
	Microscopy           string      `json:"microscopy"`
	PublicationDOI       string      `json:"publication_doi"`
	Notes                string      `json:"notes"`
	Tables               []TableRows `json:"tables"`
	TotalRows            uint64      `json:"total_rows"`
	// Meshes counts the dataset's compartments whose surface mesh the hub
	// holds (ingested, or seeded).
	Meshes    int64      `json:"meshes"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	// UpdatedAt is when the hub last saw the dataset change.
	UpdatedAt time.Time `json:"updated_at"`
	// Rank is the full-text rank of a search's match (absent without text).
	Rank *float64 `json:"rank,omitempty"`
}

// ReplaceCatalog writes the catalog a node reported at fetchedAt: its
// datasets are inserted or updated (updated_at moves only when something
// changed) and the node's datasets it no longer reports are removed, in one
// transaction. Writes of one node's catalog are serialised, and a catalog
// fetched before the one already written is left out (Stale), so concurrent
// syncs never bring back an older catalog.
func (s *Store) ReplaceCatalog(ctx context.Context, cluster string, datasets []CatalogDataset, fetchedAt time.Time, workflowID string) (domain.CatalogChange, error) {
	ch := domain.CatalogChange{Datasets: len(datasets)}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		ch = domain.CatalogChange{Datasets: len(datasets)}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "syndb-catalog:"+cluster); err != nil {
			return fmt.Errorf("lock catalog of %q: %w", cluster, err)
		}
		var last time.Time
		err := tx.QueryRow(ctx, `SELECT fetched_at FROM catalog_syncs WHERE cluster = $1`, cluster).Scan(&last)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read catalog state of %q: %w", cluster, err)
		case last.After(fetchedAt):
			ch.Stale = true
			return nil
		}
		ids := make([]string, 0, len(datasets))
		batch := &pgx.Batch{}
		for _, d := range datasets {
			tables, total := sortedTables(d.Tables)
			raw, err := json.Marshal(tables)
			if err != nil {
				return fmt.Errorf("encode tables of dataset %s: %w", d.ID, err)
			}
			ch.Rows += total
			ids = append(ids, d.ID.String())
			var created *time.Time
			if !d.CreatedAt.IsZero() {
				t := d.CreatedAt.UTC()
				created = &t
			}
			genetic := d.GeneticManipulations
			if genetic == nil {
				genetic = []string{}
			}
			batch.Queue(upsertDataset, cluster, d.ID.String(), d.Name, d.Owner, d.Animal, d.BrainRegion, genetic,
				d.Microscopy, d.PublicationDOI, d.Notes, string(raw), int64(min(total, uint64(1)<<62)), created,
			).QueryRow(func(row pgx.Row) error {
				var inserted bool
				err := row.Scan(&inserted)
				switch {
				case errors.Is(err, pgx.ErrNoRows): // unchanged
				case err != nil:
					return fmt.Errorf("write dataset %s of %q: %w", d.ID, cluster, err)
				case inserted:
					ch.Added++
				default:
					ch.Updated++
				}
				return nil
			})
		}
		if batch.Len() > 0 {
			if err := tx.SendBatch(ctx, batch).Close(); err != nil {
				return fmt.Errorf("write catalog of %q: %w", cluster, err)
			}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM datasets WHERE cluster = $1 AND dataset_id <> ALL($2::uuid[])`, cluster, ids)
		if err != nil {
			return fmt.Errorf("remove datasets %q no longer reports: %w", cluster, err)
		}
		ch.Removed = int(tag.RowsAffected())
		_, err = tx.Exec(ctx, `INSERT INTO catalog_syncs (cluster, fetched_at, datasets, workflow_id) VALUES ($1, $2, $3, $4)
			ON CONFLICT (cluster) DO UPDATE SET fetched_at = EXCLUDED.fetched_at, datasets = EXCLUDED.datasets,
				workflow_id = EXCLUDED.workflow_id, written_at = now()`, cluster, fetchedAt.UTC(), len(datasets), workflowID)
		if err != nil {
			return fmt.Errorf("record catalog sync of %q: %w", cluster, err)
		}
		return nil
	})
	if err != nil {
		return domain.CatalogChange{}, err
	}
	return ch, nil
}

const upsertDataset = `INSERT INTO datasets AS d (cluster, dataset_id, name, owner, animal, brain_region, genetic_manipulations,
		microscopy, publication_doi, notes, tables, total_rows, created_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now())
	ON CONFLICT (cluster, dataset_id) DO UPDATE SET name = EXCLUDED.name, owner = EXCLUDED.owner, animal = EXCLUDED.animal,
		brain_region = EXCLUDED.brain_region, genetic_manipulations = EXCLUDED.genetic_manipulations,
		microscopy = EXCLUDED.microscopy, publication_doi = EXCLUDED.publication_doi, notes = EXCLUDED.notes,
		tables = EXCLUDED.tables, total_rows = EXCLUDED.total_rows, created_at = EXCLUDED.created_at, updated_at = now()
	WHERE (d.name, d.owner, d.animal, d.brain_region, d.genetic_manipulations, d.microscopy, d.publication_doi, d.notes,
			d.tables, d.total_rows, d.created_at)
		IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.owner, EXCLUDED.animal, EXCLUDED.brain_region, EXCLUDED.genetic_manipulations,
			EXCLUDED.microscopy, EXCLUDED.publication_doi, EXCLUDED.notes, EXCLUDED.tables, EXCLUDED.total_rows, EXCLUDED.created_at)
	RETURNING xmax = 0`

// sortedTables orders a dataset's tables by name, merging repeats, and sums
// their rows.
func sortedTables(in []TableRows) ([]TableRows, uint64) {
	out := make([]TableRows, 0, len(in))
	var total uint64
	for _, t := range in {
		total += t.Rows
		if i := slices.IndexFunc(out, func(o TableRows) bool { return o.Table == t.Table }); i >= 0 {
			out[i].Rows += t.Rows
			continue
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b TableRows) int { return cmp.Compare(a.Table, b.Table) })
	return out, total
}

// DatasetQuery is a catalog search: full text (websearch syntax: words,
// "phrases", OR, -excluded) and exact-match filters, all optional.
type DatasetQuery struct {
	Text       string
	Animal     string
	Microscopy string
	Node       string
	Limit      int
	Offset     int
}

// DatasetPage is one page of a search.
type DatasetPage struct {
	Datasets []Dataset `json:"datasets"`
	// Total counts every match, not only this page's.
	Total int `json:"total"`
}

const datasetColumns = `d.cluster, d.dataset_id::text, d.name, d.owner, d.animal, d.brain_region, d.genetic_manipulations,
	d.microscopy, d.publication_doi, d.notes, d.tables, d.total_rows,
	(SELECT count(*) FROM meshes m WHERE m.cluster = d.cluster AND m.dataset_id = d.dataset_id),
	d.created_at, d.updated_at`

// SearchDatasets searches the catalog of the active nodes. With text, the
// matches come best first (ts_rank over the weighted search column: name and
// owner before animal, region and microscopy, before genetics and DOI,
// before notes); without, every dataset by name.
func (s *Store) SearchDatasets(ctx context.Context, q DatasetQuery) (DatasetPage, error) {
	if q.Limit < 1 || q.Limit > MaxDatasetLimit {
		return DatasetPage{}, fmt.Errorf("limit %d is outside 1..%d", q.Limit, MaxDatasetLimit)
	}
	if q.Offset < 0 {
		return DatasetPage{}, fmt.Errorf("offset %d is negative", q.Offset)
	}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	from := `datasets d JOIN clusters c ON c.name = d.cluster`
	conds := []string{`c.status = 'active'`}
	rank, order := `NULL::float8`, `d.name, d.cluster, d.dataset_id`
	if q.Text != "" {
		from += `, websearch_to_tsquery('english', ` + arg(q.Text) + `) AS query`
		conds = append(conds, `d.search @@ query`)
		rank, order = `ts_rank(d.search, query)::float8`, `rank DESC, `+order
	}
	for _, f := range []struct{ col, val string }{{"d.animal", q.Animal}, {"d.microscopy", q.Microscopy}, {"d.cluster", q.Node}} {
		if f.val != "" {
			conds = append(conds, f.col+` = `+arg(f.val))
		}
	}
	where := strings.Join(conds, ` AND `)
	sql := `SELECT ` + datasetColumns + `, ` + rank + ` AS rank, count(*) OVER () FROM ` + from + ` WHERE ` + where +
		` ORDER BY ` + order + ` LIMIT ` + arg(q.Limit) + ` OFFSET ` + arg(q.Offset)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return DatasetPage{}, fmt.Errorf("search datasets: %w", err)
	}
	page := DatasetPage{Datasets: []Dataset{}}
	for rows.Next() {
		d, err := scanDataset(rows, &page.Total)
		if err != nil {
			rows.Close()
			return DatasetPage{}, fmt.Errorf("search datasets: %w", err)
		}
		page.Datasets = append(page.Datasets, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return DatasetPage{}, fmt.Errorf("search datasets: %w", err)
	}
	if len(page.Datasets) == 0 && q.Offset > 0 {
		// Past the last page: the window count saw no rows.
		args = args[:len(args)-2]
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+from+` WHERE `+where, args...).Scan(&page.Total); err != nil {
			return DatasetPage{}, fmt.Errorf("count datasets: %w", err)
		}
	}
	return page, nil
}

// Dataset returns one dataset of an active node, or ErrNotFound.
func (s *Store) Dataset(ctx context.Context, cluster string, id uuid.UUID) (Dataset, error) {
	row := s.pool.QueryRow(ctx, `SELECT `+datasetColumns+`, NULL::float8, 1 FROM datasets d JOIN clusters c ON c.name = d.cluster
		WHERE c.status = 'active' AND d.cluster = $1 AND d.dataset_id = $2`, cluster, id.String())
	var total int
	d, err := scanDataset(row, &total)
	if errors.Is(err, pgx.ErrNoRows) {
		return Dataset{}, fmt.Errorf("dataset %s of %q: %w", id, cluster, domain.ErrNotFound)
	}
	if err != nil {
		return Dataset{}, fmt.Errorf("read dataset %s of %q: %w", id, cluster, err)
	}
	return d, nil
}

func scanDataset(row pgx.Row, total *int) (Dataset, error) {
	var (
		d      Dataset
		tables []byte
		rows   int64
	)
	err := row.Scan(&d.Node, &d.DatasetID, &d.Name, &d.Owner, &d.Animal, &d.BrainRegion, &d.GeneticManipulations,
		&d.Microscopy, &d.PublicationDOI, &d.Notes, &tables, &rows, &d.Meshes, &d.CreatedAt, &d.UpdatedAt, &d.Rank, total)
	if err != nil {
		return Dataset{}, err
	}
	if err := json.Unmarshal(tables, &d.Tables); err != nil {
		return Dataset{}, fmt.Errorf("decode tables of dataset %s: %w", d.DatasetID, err)
	}
	if d.Tables == nil {
		d.Tables = []TableRows{}
	}
	if d.GeneticManipulations == nil {
		d.GeneticManipulations = []string{}
	}
	d.TotalRows = uint64(max(rows, 0))
	d.UpdatedAt = d.UpdatedAt.UTC()
	if d.CreatedAt != nil {
		t := d.CreatedAt.UTC()
		d.CreatedAt = &t
	}
	return d, nil
}
