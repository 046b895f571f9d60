package nodeagent

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// defaultQuantiles are reported when a summary asks for none.
var defaultQuantiles = []float64{0.5, 0.9, 0.99}

// maxSummaryDatasets is the most datasets one summary reply holds. With
// at most wire.MaxQuantiles quantiles each, such a reply stays well inside
// the AnalyticsQuery response cap (TestSummaryReplyFitsCap); a node with
// more datasets is asked for some of them by ID.
const maxSummaryDatasets = 10000

var numericType = regexp.MustCompile(`^(Nullable\()?(U?Int(8|16|32|64)|Float(32|64)|Decimal.*)\)?$`)

// summaryQuery is the ClickHouse query of the summary of table.column per
// dataset (nulls left out), checked against the table's columns: the
// column must be numeric and the table have a dataset_id. Its columns are
// the dataset's ID, the count, sum and sum of squares (so the hub can merge
// exact means and deviations across nodes), mean, population standard
// deviation, min, max and the quantiles; it returns at most limit rows.
func summaryQuery(table, column string, quantiles []float64, datasetIDs []string, cols []column, limit int) (string, error) {
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
		GROUP BY dataset_id ORDER BY dataset LIMIT ` + strconv.Itoa(limit), nil
}

// handleAnalytics computes an analysis on the node's own ClickHouse and
// answers with its result, which is small: a summary gives, per dataset,
// the count, sum, sum of squares (so the hub can merge exact means and
// deviations across nodes), mean, population standard deviation, min, max
// and quantiles of one numeric column; nulls are left out.
func (a *Agent) handleAnalytics(ctx context.Context, _ peer.ID, req *wire.AnalyticsQueryRequest) (*wire.AnalyticsQueryResponse, error) {
	start := time.Now()
	conn, err := a.conn(ctx)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "clickhouse: %v", err)
	}
	summaries, err := summarise(ctx, conn, a.cfg.Name, req, maxSummaryDatasets)
	if err != nil {
		return nil, err
	}
	resp := &wire.AnalyticsQueryResponse{JobId: req.GetJobId(), Node: a.cfg.Name, Summaries: summaries,
		Took: durationpb.New(time.Since(start))}
	if size := proto.Size(resp); size > p2p.AnalyticsQuery.MaxResponse {
		return nil, p2p.Errorf(p2p.CodeInvalid, "the summary of %s.%s is %d bytes, over the %d-byte reply cap: name fewer dataset_ids",
			req.GetTable(), req.GetColumn(), size, p2p.AnalyticsQuery.MaxResponse)
	}
	a.log.Info("analytics computed", "job", req.GetJobId(), "kind", req.GetKind(), "table", req.GetTable(),
		"column", req.GetColumn(), "datasets", len(summaries), "took", time.Since(start))
	return resp, nil
}

// summarise computes the summary req asks for on conn, the warehouse of
// node, and refuses one of more than maxDatasets datasets.
func summarise(ctx context.Context, conn driver.Conn, node string, req *wire.AnalyticsQueryRequest, maxDatasets int) ([]*wire.Summary, error) {
	cols, err := tableColumns(ctx, conn, req.GetTable())
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, p2p.Errorf(p2p.CodeNotFound, "no table %q on node %s", req.GetTable(), node)
	}
	sql, err := summaryQuery(req.GetTable(), req.GetColumn(), req.GetQuantiles(), req.GetDatasetIds(), cols, maxDatasets+1)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "summarise %s.%s: %v", req.GetTable(), req.GetColumn(), err)
	}
	defer func() { _ = rows.Close() }()
	var out []*wire.Summary
	for rows.Next() {
		if len(out) == maxDatasets {
			return nil, p2p.Errorf(p2p.CodeInvalid, "node %s holds more than %d datasets with %s.%s: a summary names at most %d; name dataset_ids",
				node, maxDatasets, req.GetTable(), req.GetColumn(), maxDatasets)
		}
		s := &wire.Summary{}
		if err := rows.Scan(&s.DatasetId, &s.Count, &s.Sum, &s.SumSquares, &s.Mean, &s.Stddev, &s.Min, &s.Max, &s.Quantiles); err != nil {
			return nil, p2p.Errorf(p2p.CodeInternal, "read summary: %v", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "read summary: %v", err)
	}
	return out, nil
}
