package nodeagent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// handleCatalog lists the node's datasets with their metadata and, when
// asked, each dataset's row count in every compartment table.
func (a *Agent) handleCatalog(ctx context.Context, _ peer.ID, req *wire.DatasetCatalogRequest) (*wire.DatasetCatalogResponse, error) {
	conn, err := a.conn(ctx)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "clickhouse: %v", err)
	}
	v, err := migrate.Version(ctx, conn)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "%v", err)
	}
	if v < 1 {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "warehouse has no schema yet: sync it first")
	}
	filter := datasetFilter(req.GetDatasetIds())
	rows, err := conn.Query(ctx, `SELECT toString(dataset_id), name, owner, animal, brain_region, genetic_manipulations,
		microscopy, publication_doi, notes, created_at FROM datasets`+where(filter)+` ORDER BY created_at, dataset_id`)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "list datasets: %v", err)
	}
	defer func() { _ = rows.Close() }()
	resp := &wire.DatasetCatalogResponse{Node: a.cfg.Name, SchemaVersion: int32(v)}
	byID := map[string]*wire.Dataset{}
	for rows.Next() {
		d := &wire.Dataset{}
		var created time.Time
		if err := rows.Scan(&d.DatasetId, &d.Name, &d.Owner, &d.Animal, &d.BrainRegion, &d.GeneticManipulations,
			&d.Microscopy, &d.PublicationDoi, &d.Notes, &created); err != nil {
			return nil, p2p.Errorf(p2p.CodeInternal, "read datasets: %v", err)
		}
		d.CreatedAt = timestamppb.New(created)
		resp.Datasets = append(resp.Datasets, d)
		byID[d.GetDatasetId()] = d
	}
	if err := rows.Err(); err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "read datasets: %v", err)
	}
	if !req.GetWithRowCounts() || len(resp.Datasets) == 0 {
		return resp, nil
	}
	tables, err := compartmentTables(ctx, conn)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		counts, err := conn.Query(ctx, `SELECT toString(dataset_id), count() FROM `+quote(t)+where(filter)+` GROUP BY dataset_id`)
		if err != nil {
			return nil, p2p.Errorf(p2p.CodeUnavailable, "count rows of %s: %v", t, err)
		}
		for counts.Next() {
			var (
				id string
				n  uint64
			)
			if err := counts.Scan(&id, &n); err != nil {
				_ = counts.Close()
				return nil, p2p.Errorf(p2p.CodeInternal, "count rows of %s: %v", t, err)
			}
			if d := byID[id]; d != nil {
				d.Tables = append(d.Tables, &wire.TableRows{Table: t, Rows: n})
			}
		}
		err = counts.Err()
		_ = counts.Close()
		if err != nil {
			return nil, p2p.Errorf(p2p.CodeUnavailable, "count rows of %s: %v", t, err)
		}
	}
	return resp, nil
}

// compartmentTables lists the tables of the node's database whose rows
// belong to a dataset (they have a dataset_id column), but datasets itself.
func compartmentTables(ctx context.Context, conn driver.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT table FROM system.columns
		WHERE database = currentDatabase() AND name = 'dataset_id' AND table != 'datasets' ORDER BY table`)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "list tables: %v", err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, p2p.Errorf(p2p.CodeInternal, "list tables: %v", err)
		}
		if clickhouse.ValidIdent(t) {
			out = append(out, t)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "list tables: %v", err)
	}
	return out, nil
}

// column is one column of a table, as system.columns gives it.
type column struct{ name, typ string }

// tableColumns lists a table's columns in definition order; none when the
// table does not exist.
func tableColumns(ctx context.Context, conn driver.Conn, table string) ([]column, error) {
	rows, err := conn.Query(ctx, `SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = ?`, table)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "describe %s: %v", table, err)
	}
	defer func() { _ = rows.Close() }()
	var out []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, p2p.Errorf(p2p.CodeInternal, "describe %s: %v", table, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "describe %s: %v", table, err)
	}
	return out, nil
}

// datasetFilter is a condition on dataset_id for validated UUIDs ("" for
// none). IDs are re-formatted from their parsed form, never copied.
func datasetFilter(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	lits := make([]string, 0, len(ids))
	for _, id := range ids {
		u, err := uuid.Parse(id)
		if err != nil {
			continue // validated already; never reached
		}
		lits = append(lits, fmt.Sprintf("toUUID('%s')", u.String()))
	}
	return "dataset_id IN (" + strings.Join(lits, ", ") + ")"
}

func where(conds ...string) string {
	var keep []string
	for _, c := range conds {
		if c != "" {
			keep = append(keep, c)
		}
	}
	if len(keep) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(keep, " AND ")
}

// quote quotes a validated identifier.
func quote(ident string) string { return "`" + ident + "`" }
