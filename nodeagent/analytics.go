package nodeagent

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/syndb/federation/internal/fedpb"
	"github.com/syndb/federation/internal/p2p"
)

// defaultQuantiles are reported when a summary asks for none.
var defaultQuantiles = []float64{0.5, 0.9, 0.99}

var numericType = regexp.MustCompile(`^(Nullable\()?(U?Int(8|16|32|64)|Float(32|64)|Decimal.*)\)?$`)

// handleAnalytics computes an analysis on the node's own ClickHouse. A
// summary gives, per dataset, the count, sum, sum of squares (so the hub
// can merge exact means and deviations across nodes), mean, population
// standard deviation, min, max and quantiles of one numeric column; nulls
// are left out.
func (a *Agent) handleAnalytics(ctx context.Context, _ peer.ID, req *fedpb.AnalyticsQueryRequest) (*fedpb.AnalyticsQueryResponse, error) {
	start := time.Now()
	conn, err := a.conn(ctx)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "clickhouse: %v", err)
	}
	cols, err := tableColumns(ctx, conn, req.GetTable())
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, p2p.Errorf(p2p.CodeNotFound, "no table %q on node %s", req.GetTable(), a.cfg.Name)
	}
	var typ string
	hasDataset := false
	for _, c := range cols {
		if c.name == req.GetColumn() {
			typ = c.typ
		}
		hasDataset = hasDataset || c.name == "dataset_id"
	}
	switch {
	case typ == "":
		return nil, p2p.Errorf(p2p.CodeInvalid, "table %s has no column %q", req.GetTable(), req.GetColumn())
	case !numericType.MatchString(typ):
		return nil, p2p.Errorf(p2p.CodeInvalid, "column %s.%s is %s, not numeric", req.GetTable(), req.GetColumn(), typ)
	case !hasDataset:
		return nil, p2p.Errorf(p2p.CodeInvalid, "table %s has no dataset_id column", req.GetTable())
	}
	qs := req.GetQuantiles()
	if len(qs) == 0 {
		qs = defaultQuantiles
	}
	lits := make([]string, len(qs))
	for i, q := range qs {
		lits[i] = strconv.FormatFloat(q, 'g', -1, 64)
	}
	col := quote(req.GetColumn())
	sql := `SELECT toString(dataset_id) AS d, count() AS n, sum(x), sum(x * x), avg(x), stddevPop(x), min(x), max(x),
		quantiles(` + strings.Join(lits, ", ") + `)(x)
		FROM (SELECT dataset_id, ifNull(toFloat64(` + col + `), 0) AS x FROM ` + quote(req.GetTable()) +
		where("isNotNull("+col+")", datasetFilter(req.GetDatasetIds())) + `)
		GROUP BY dataset_id ORDER BY d`
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "summarise %s.%s: %v", req.GetTable(), req.GetColumn(), err)
	}
	defer func() { _ = rows.Close() }()
	resp := &fedpb.AnalyticsQueryResponse{JobId: req.GetJobId(), Node: a.cfg.Name}
	for rows.Next() {
		s := &fedpb.Summary{}
		if err := rows.Scan(&s.DatasetId, &s.Count, &s.Sum, &s.SumSquares, &s.Mean, &s.Stddev, &s.Min, &s.Max, &s.Quantiles); err != nil {
			return nil, p2p.Errorf(p2p.CodeInternal, "read summary: %v", err)
		}
		resp.Summaries = append(resp.Summaries, s)
	}
	if err := rows.Err(); err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "read summary: %v", err)
	}
	resp.Took = durationpb.New(time.Since(start))
	a.log.Info("analytics computed", "job", req.GetJobId(), "kind", req.GetKind(), "table", req.GetTable(),
		"column", req.GetColumn(), "datasets", len(resp.Summaries), "took", time.Since(start))
	return resp, nil
}
