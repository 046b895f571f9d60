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

// summaryColumns are the columns of a summary, per dataset: its ID, the
// count, sum and sum of squares (so the hub can merge exact means and
// deviations across nodes), mean, population standard deviation, min, max
// and the quantiles.
var summaryColumns = []string{"dataset", "n", "sx", "sxx", "mean", "sd", "lo", "hi", "qs"}

// summaryQuery is the ClickHouse query of the summary of table.column per
// dataset (nulls left out), checked against the table's columns: the
// column must be numeric and the table have a dataset_id.
func summaryQuery(table, column string, quantiles []float64, datasetIDs []string, cols []column) (string, error) {
	var typ string
	hasDataset := false
	for _, c := range cols {
		if c.name == column {
			typ = c.typ
		}
		hasDataset = hasDataset || c.name == "dataset_id"
	}
	switch {
	case typ == "":
		return "", p2p.Errorf(p2p.CodeInvalid, "table %s has no column %q", table, column)
	case !numericType.MatchString(typ):
		return "", p2p.Errorf(p2p.CodeInvalid, "column %s.%s is %s, not numeric", table, column, typ)
	case !hasDataset:
		return "", p2p.Errorf(p2p.CodeInvalid, "table %s has no dataset_id column", table)
	}
	qs := quantiles
	if len(qs) == 0 {
		qs = defaultQuantiles
	}
	lits := make([]string, len(qs))
	for i, q := range qs {
		lits[i] = strconv.FormatFloat(q, 'g', -1, 64)
	}
	col := quote(column)
	return `SELECT toString(dataset_id) AS dataset, count() AS n, sum(x) AS sx, sum(x * x) AS sxx, avg(x) AS mean,
		stddevPop(x) AS sd, min(x) AS lo, max(x) AS hi, quantiles(` + strings.Join(lits, ", ") + `)(x) AS qs
		FROM (SELECT dataset_id, ifNull(toFloat64(` + col + `), 0) AS x FROM ` + quote(table) +
		where("isNotNull("+col+")", datasetFilter(datasetIDs)) + `)
		GROUP BY dataset_id ORDER BY dataset`, nil
}

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
	sql, err := summaryQuery(req.GetTable(), req.GetColumn(), req.GetQuantiles(), req.GetDatasetIds(), cols)
	if err != nil {
		return nil, err
	}
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
