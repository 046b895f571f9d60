package nodeagent

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// meshColumns are the columns a mesh writes, with the types they may have.
var meshColumns = []struct{ name, typ string }{
	{"mesh_volume", "Float64"}, {"mesh_surface_area", "Float64"}, {"mesh_area_volume_ratio", "Float64"},
	{"mesh_sphericity", "Float64"}, {"s3_mesh_location", "String"},
}

// meshPoll is how often the agent looks whether its mutation has reached
// the row.
const meshPoll = 50 * time.Millisecond

// handleMeshMetrics writes a mesh's metrics and location into the row of
// its compartment, idempotently: rows that already hold the values are left
// alone, and otherwise one ALTER TABLE … UPDATE (a mutation, on ClickHouse
// 18.16 as on current releases) sets them, and the agent answers once the
// rows hold them. It never adds a row: a dataset and cid with no row is
// not_found. With check_only it only looks the row up.
func (a *Agent) handleMeshMetrics(ctx context.Context, _ peer.ID, req *wire.MeshMetricsRequest) (*wire.MeshMetricsResponse, error) {
	conn, err := a.conn(ctx)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "clickhouse: %v", err)
	}
	table := req.GetTable()
	if err := a.checkMeshTable(ctx, table); err != nil {
		return nil, err
	}
	ds, cid := uuid.MustParse(req.GetDatasetId()), uuid.MustParse(req.GetCid()) // validated
	row := fmt.Sprintf("dataset_id = toUUID('%s') AND cid = toUUID('%s')", ds, cid)
	held := meshCondition(req)
	count := func() (rows, holding uint64, err error) {
		err = conn.QueryRow(ctx, `SELECT count(), countIf(ifNull(`+held+`, 0)) FROM `+quote(table)+` WHERE `+row).Scan(&rows, &holding)
		return rows, holding, err
	}
	a.meshMu.Lock()
	defer a.meshMu.Unlock()
	rows, holding, err := count()
	switch {
	case err != nil:
		return nil, p2p.Errorf(p2p.CodeUnavailable, "read %s row %s: %v", table, cid, err)
	case rows == 0:
		return nil, p2p.Errorf(p2p.CodeNotFound, "%s has no row in %s with dataset_id %s and cid %s", a.cfg.Name, table, ds, cid)
	case req.GetCheckOnly() || holding == rows:
		return &wire.MeshMetricsResponse{Rows: rows}, nil
	}
	set := fmt.Sprintf("mesh_volume = %s, mesh_surface_area = %s, mesh_area_volume_ratio = %s, mesh_sphericity = %s, s3_mesh_location = '%s'",
		literal(req.GetMeshVolume()), literal(req.GetMeshSurfaceArea()), literal(req.GetMeshAreaVolumeRatio()),
		literal(req.GetMeshSphericity()), req.GetS3MeshLocation())
	if err := conn.Exec(ctx, `ALTER TABLE `+quote(table)+` UPDATE `+set+` WHERE `+row); err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "update %s row %s: %v", table, cid, err)
	}
	// A mutation runs in the background; the answer waits until it has
	// rewritten the rows (or the request's deadline ends it: the hub's
	// retry then finds them updated, or updates them again).
	t := time.NewTicker(meshPoll)
	defer t.Stop()
	for {
		rows, holding, err = count()
		if err == nil && holding == rows {
			a.log.Info("mesh metrics written", "table", table, "cid", cid, "rows", rows)
			return &wire.MeshMetricsResponse{Rows: rows, Changed: true}, nil
		}
		select {
		case <-ctx.Done():
			return nil, p2p.Errorf(p2p.CodeUnavailable, "the update of %s row %s had not finished: %v", table, cid, ctx.Err())
		case <-t.C:
		}
	}
}

// checkMeshTable checks that table is a compartment table with the mesh
// columns.
func (a *Agent) checkMeshTable(ctx context.Context, table string) error {
	conn, err := a.conn(ctx)
	if err != nil {
		return p2p.Errorf(p2p.CodeUnavailable, "clickhouse: %v", err)
	}
	cols, err := tableColumns(ctx, conn, table)
	if err != nil {
		return err
	}
	if len(cols) == 0 {
		return p2p.Errorf(p2p.CodeNotFound, "%s has no table %s", a.cfg.Name, table)
	}
	types := map[string]string{}
	for _, c := range cols {
		types[c.name] = strings.TrimSuffix(strings.TrimPrefix(c.typ, "Nullable("), ")")
	}
	if types["dataset_id"] != "UUID" || types["cid"] != "UUID" {
		return p2p.Errorf(p2p.CodeInvalid, "%s is not a compartment table (no dataset_id and cid)", table)
	}
	for _, c := range meshColumns {
		if types[c.name] != c.typ {
			return p2p.Errorf(p2p.CodeInvalid, "table %s has no %s %s column: it holds no meshes", table, c.name, c.typ)
		}
	}
	return nil
}

// meshCondition is true of a row that holds the request's values.
func meshCondition(req *wire.MeshMetricsRequest) string {
	return fmt.Sprintf("mesh_volume = %s AND mesh_surface_area = %s AND mesh_area_volume_ratio = %s AND mesh_sphericity = %s AND s3_mesh_location = '%s'",
		literal(req.GetMeshVolume()), literal(req.GetMeshSurfaceArea()), literal(req.GetMeshAreaVolumeRatio()),
		literal(req.GetMeshSphericity()), req.GetS3MeshLocation())
}

// literal prints a validated (finite, normal) float so ClickHouse's parser
// reads back the same float64: the shortest decimal that round-trips.
func literal(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
