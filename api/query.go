package api

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/fedsql"
	"github.com/syndb/federation/internal/routing"
)

// QueryRequest is the body of POST /v1/query.
type QueryRequest struct {
	SQL string `json:"sql"`
	// Nodes limits the query to these nodes (all routable nodes when empty).
	Nodes []string `json:"nodes"`
	// Format is json (JSON lines, the default), csv or arrow (Arrow IPC
	// stream); the Accept header may choose it instead.
	Format string `json:"format"`
}

// QueryMeta says which nodes answered a query, which did not and why, and
// how it ended: the last JSON line of a json answer ({"_meta": …}), and
// headers and trailers of every answer.
type QueryMeta struct {
	Included  []string           `json:"included"`
	Excluded  []domain.Exclusion `json:"excluded"`
	Rows      int64              `json:"rows"`
	Limit     int                `json:"limit"`
	Truncated bool               `json:"truncated,omitempty"`
	ElapsedMS int64              `json:"elapsed_ms"`
	// Error is set when the query failed after rows had been sent.
	Error string `json:"error,omitempty"`
}

// Response headers and trailers of /v1/query.
const (
	HeaderIncluded = "X-Syndb-Nodes-Included"
	HeaderExcluded = "X-Syndb-Nodes-Excluded"
	TrailerRows    = "X-Syndb-Rows"
	TrailerError   = "X-Syndb-Error"
)

// Formats of /v1/query.
const (
	formatJSON  = "json"
	formatCSV   = "csv"
	formatArrow = "arrow"
)

// ReasonUnreachableNow excludes a node whose warehouse failed the query itself.
const ReasonUnreachableNow domain.Reason = "unreachable_at_query"

func (s *Server) query(c echo.Context) error {
	var req QueryRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	format, err := queryFormat(req.Format, c.Request().Header.Get("Accept"))
	if err != nil {
		return err
	}
	q := s.cfg.Query
	parsed, err := fedsql.Parse(req.SQL, s.catalog, q.MaxRows)
	if errors.Is(err, fedsql.ErrInvalid) {
		return errBadRequest(err.Error())
	}
	if err != nil {
		return err
	}
	started := time.Now()
	ctx, cancel := context.WithTimeout(c.Request().Context(), q.Timeout)
	defer cancel()
	// The first row (or the end) has been read: a query that fails before
	// any row is an error status, never a 200.
	rows, meta, err := s.runFederated(ctx, parsed, req.Nodes)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()

	h := c.Response().Header()
	h.Set(HeaderIncluded, strings.Join(meta.Included, ","))
	h.Set(HeaderExcluded, describeExclusions(meta.Excluded))
	h.Set("Trailer", TrailerRows+", "+TrailerError)
	h.Set("Cache-Control", "no-store")
	var werr error
	switch format {
	case formatCSV:
		h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
		c.Response().WriteHeader(http.StatusOK)
		meta.Rows, werr = writeCSV(c.Response(), rows)
	case formatArrow:
		h.Set(echo.HeaderContentType, "application/vnd.apache.arrow.stream")
		c.Response().WriteHeader(http.StatusOK)
		meta.Rows, werr = writeArrow(c.Response(), rows)
	default:
		h.Set(echo.HeaderContentType, "application/x-ndjson")
		c.Response().WriteHeader(http.StatusOK)
		meta.Rows, werr = writeJSONLines(c.Response(), rows)
	}
	if werr == nil {
		werr = rows.Err()
	}
	meta.ElapsedMS = time.Since(started).Milliseconds()
	var failed *ErrorDetail
	if werr != nil {
		failed = s.streamError(werr)
		meta.Error = failed.Message
		s.deps.Log.Warn("query failed after streaming began", "rows", meta.Rows, "err", meta.Error)
	}
	h.Set(TrailerRows, fmt.Sprint(meta.Rows))
	h.Set(TrailerError, meta.Error)
	if format == formatJSON {
		// The last line: the query's meta and, when it failed, the error in
		// the shape of every error body, so a reader of lines cannot take
		// a cut-short answer for a whole one.
		line, _ := json.Marshal(queryEnd{Meta: meta, Error: failed})
		_, _ = c.Response().Write(append(line, '\n'))
	}
	s.deps.Log.Info("query", "table", parsed.Table, "nodes", len(meta.Included), "excluded", len(meta.Excluded),
		"rows", meta.Rows, "format", format, "took_ms", meta.ElapsedMS)
	return nil
}

// queryEnd is the last line of a JSON-lines answer.
type queryEnd struct {
	Meta  QueryMeta    `json:"_meta"`
	Error *ErrorDetail `json:"error,omitempty"`
}

// streamError is the client's account of a query that failed after its
// answer began.
func (s *Server) streamError(err error) *ErrorDetail {
	var ae *apiError
	if errors.As(s.queryError(err), &ae) {
		return &ErrorDetail{Code: ae.code, Message: ae.message}
	}
	return &ErrorDetail{Code: "upstream", Message: s.redact(err.Error())}
}

// runFederated routes a checked query, compiles it for the included nodes,
// starts it on the hub's ClickHouse and reads its first row. A query that
// fails on a connection to a node is followed by a probe of each included
// node alone; those that fail it are excluded and the query started again
// without them. The caller streams the rows before anything else.
func (s *Server) runFederated(ctx context.Context, parsed *fedsql.Parsed, nodes []string) (driver.Rows, QueryMeta, error) {
	need := routing.Need{MinSchema: parsed.MinSchema, Nodes: nodes}
	if err := routing.Validate(need); err != nil {
		return nil, QueryMeta{}, errBadRequest(err.Error())
	}
	snap := s.deps.Registry.Snapshot()
	plan := routing.Route(routing.FromClusters(snap.All()), need)
	meta := QueryMeta{Included: plan.Names(), Excluded: plan.Excluded, Limit: parsed.Limit, Truncated: parsed.Truncated}
	if meta.Excluded == nil {
		meta.Excluded = []domain.Exclusion{}
	}
	ctx = chgo.Context(ctx, chgo.WithSettings(s.querySettings(int(s.cfg.Query.Timeout.Seconds()))))
	for {
		if len(meta.Included) == 0 {
			return nil, meta, &apiError{http.StatusServiceUnavailable, codeUnavailable,
				"no node can answer this query: " + describeExclusions(meta.Excluded)}
		}
		targets := s.targets(snap, meta.Included)
		sql, err := parsed.Compile(targets)
		if errors.Is(err, fedsql.ErrInvalid) {
			s.deps.Log.Warn("query refused after compiling", "err", err)
			return nil, meta, errBadRequest(err.Error())
		}
		if err != nil {
			return nil, meta, err
		}
		rows, err := s.start(ctx, sql)
		if err == nil {
			return rows, meta, nil
		}
		if !clickhouse.IsNetwork(err) {
			return nil, meta, s.queryError(err)
		}
		failed := s.probe(ctx, targets)
		if len(failed) == 0 {
			return nil, meta, s.queryError(err)
		}
		for _, f := range failed {
			meta.Included = slices.DeleteFunc(meta.Included, func(n string) bool { return n == f.Name })
			meta.Excluded = append(meta.Excluded, f)
			s.deps.Log.Warn("query: node failed, running without it", "node", f.Name, "detail", f.Detail)
		}
	}
}

// querySettings are the ClickHouse settings of every federated statement:
// the query's time bound and, for each remote() connection to a node,
// connect and receive timeouts with a single try, so a stalled node fails
// its share within seconds.
func (s *Server) querySettings(maxSeconds int) chgo.Settings {
	q := s.cfg.Query
	return chgo.Settings{
		"max_execution_time":                  maxSeconds,
		"connect_timeout":                     max(1, int(q.RemoteConnectTimeout.Seconds())),
		"connect_timeout_with_failover_ms":    int(q.RemoteConnectTimeout.Milliseconds()),
		"receive_timeout":                     int(q.RemoteReceiveTimeout.Seconds()),
		"send_timeout":                        int(q.RemoteReceiveTimeout.Seconds()),
		"connections_with_failover_max_tries": 1,
	}
}

// start runs sql and reads up to its first row, so an error ClickHouse
// raises before any row is an error here.
func (s *Server) start(ctx context.Context, sql string) (driver.Rows, error) {
	rows, err := s.deps.Query.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	has := rows.Next()
	if !has {
		if err := rows.Err(); err != nil {
			_ = rows.Close()
			return nil, err
		}
	}
	state := peekedEnd
	if has {
		state = peekedRow
	}
	return &peekedRows{Rows: rows, state: state}, nil
}

// probe checks each target's warehouse alone, concurrently, from the hub's
// ClickHouse, and returns the exclusions of those that fail. When the hub's
// own ClickHouse does not answer, no node is blamed.
func (s *Server) probe(ctx context.Context, targets []fedsql.Target) []domain.Exclusion {
	q := s.cfg.Query
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.ProbeTimeout)
	defer cancel()
	pctx := chgo.Context(ctx, chgo.WithSettings(s.querySettings(max(1, int(q.ProbeTimeout.Seconds())))))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			sql, err := fedsql.ProbeSQL(t)
			if err == nil {
				var one uint8
				err = s.deps.Query.QueryRow(pctx, sql).Scan(&one)
			}
			errs[i] = err
		})
	}
	hubErr := s.deps.Query.Ping(ctx)
	wg.Wait()
	if hubErr != nil {
		s.deps.Log.Warn("query: hub warehouse does not answer; no node blamed", "err", hubErr)
		return nil
	}
	var out []domain.Exclusion
	for i, err := range errs {
		if err == nil {
			continue
		}
		detail := "its warehouse did not answer the query"
		if clickhouse.Code(err) != 0 || errors.Is(err, context.DeadlineExceeded) {
			detail += ": " + s.redact(firstLine(err.Error()))
		}
		out = append(out, domain.Exclusion{Name: targets[i].Name, Reason: ReasonUnreachableNow, Detail: detail})
	}
	return out
}

func queryFormat(format, accept string) (string, error) {
	if format == "" {
		switch {
		case strings.Contains(accept, "application/vnd.apache.arrow.stream"):
			format = formatArrow
		case strings.Contains(accept, "text/csv"):
			format = formatCSV
		default:
			format = formatJSON
		}
	}
	switch format {
	case formatJSON, formatCSV, formatArrow:
		return format, nil
	}
	return "", errBadRequest(fmt.Sprintf("format %q: use json, csv or arrow", format))
}

// targets are the included nodes as the hub's ClickHouse reaches them.
func (s *Server) targets(snap registrySnapshot, names []string) []fedsql.Target {
	out := make([]fedsql.Target, 0, len(names))
	for _, n := range names {
		c, _ := snap.Get(n)
		out = append(out, fedsql.Target{Name: c.Name, Addr: c.ClickHouseAddr, Database: s.cfg.Query.RemoteDatabase,
			User: s.cfg.Query.RemoteUser, Password: s.cfg.Query.RemotePassword})
	}
	return out
}

// peekState is where peekedRows is: its first row read, or the end.
type peekState int

const (
	peekedEnd  peekState = iota // the result had no row
	peekedRow                   // the first row is read, not yet consumed
	peekedDone                  // the first row was consumed
)

// peekedRows is a result whose first Next already happened.
type peekedRows struct {
	driver.Rows
	state peekState
}

func (r *peekedRows) Next() bool {
	switch r.state {
	case peekedEnd:
		return false
	case peekedRow:
		r.state = peekedDone
		return true
	case peekedDone:
	}
	return r.Rows.Next()
}

// registrySnapshot is what the query needs of a registry snapshot.
type registrySnapshot interface {
	Get(name string) (domain.Cluster, bool)
}

// queryError turns a ClickHouse error into the client's answer: its
// message (without credentials) for a query ClickHouse refused, a 504 for a
// timeout.
func (s *Server) queryError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || clickhouse.Code(err) == clickhouse.CodeTimeoutExceeded {
		return &apiError{http.StatusGatewayTimeout, "timeout", fmt.Sprintf("query exceeded %s", s.cfg.Query.Timeout)}
	}
	if errors.Is(err, chgo.ErrAcquireConnTimeout) {
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "the hub is answering as many queries as it can; try again shortly"}
	}
	var ex *chgo.Exception
	if errors.As(err, &ex) {
		if clickhouse.IsQueryFault(err) {
			return errBadRequest("clickhouse refused the query: " + s.redact(firstLine(ex.Message)))
		}
		return &apiError{http.StatusBadGateway, "upstream", "the hub warehouse failed the query: " + s.redact(firstLine(ex.Message))}
	}
	return fmt.Errorf("run query: %w", err)
}

// redact removes what must never reach a client or a log: the nodes'
// password and the compiled remote() calls.
func (s *Server) redact(msg string) string {
	if p := s.cfg.Query.RemotePassword; p != "" {
		msg = strings.ReplaceAll(msg, p, "***")
	}
	if i := strings.Index(msg, "remote("); i >= 0 {
		msg = msg[:i] + "remote(…)"
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func describeExclusions(ex []domain.Exclusion) string {
	parts := make([]string, 0, len(ex))
	for _, e := range ex {
		parts = append(parts, fmt.Sprintf("%s (%s)", e.Name, e.Reason))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// scanner reads rows into fresh values of each column's Go type.
type scanner struct {
	names []string
	types []reflect.Type
	vals  []any
}

func newScanner(rows driver.Rows) *scanner {
	cts := rows.ColumnTypes()
	s := &scanner{names: rows.Columns(), types: make([]reflect.Type, len(cts)), vals: make([]any, len(cts))}
	for i, ct := range cts {
		s.types[i] = ct.ScanType()
	}
	return s
}

func (s *scanner) scan(rows driver.Rows) ([]any, error) {
	for i, t := range s.types {
		s.vals[i] = reflect.New(t).Interface()
	}
	if err := rows.Scan(s.vals...); err != nil {
		return nil, fmt.Errorf("read row: %w", err)
	}
	out := make([]any, len(s.vals))
	for i, v := range s.vals {
		out[i] = deref(reflect.ValueOf(v).Elem())
	}
	return out, nil
}

// deref unwraps Nullable pointers: nil stays nil.
func deref(v reflect.Value) any {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	return v.Interface()
}

// flushEvery is how many rows are buffered before they are pushed to the client.
const flushEvery = 1024

func writeJSONLines(w *echo.Response, rows driver.Rows) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	sc := newScanner(rows)
	keys := make([][]byte, len(sc.names))
	for i, n := range sc.names {
		keys[i], _ = json.Marshal(n)
	}
	var n int64
	for rows.Next() {
		vals, err := sc.scan(rows)
		if err != nil {
			return n, err
		}
		_ = bw.WriteByte('{')
		for i, v := range vals {
			if i > 0 {
				_ = bw.WriteByte(',')
			}
			_, _ = bw.Write(keys[i])
			_ = bw.WriteByte(':')
			if err := writeJSONValue(bw, v); err != nil {
				return n, err
			}
		}
		if _, err := bw.WriteString("}\n"); err != nil {
			return n, err
		}
		n++
		if n%flushEvery == 0 {
			if err := flush(bw, w); err != nil {
				return n, err
			}
		}
	}
	return n, flush(bw, w)
}

func writeJSONValue(w io.Writer, v any) error {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			v = nil
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			v = nil
		}
	case time.Time:
		v = x.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %T: %w", v, err)
	}
	_, err = w.Write(b)
	return err
}

func writeCSV(w *echo.Response, rows driver.Rows) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	sc := newScanner(rows)
	if err := cw.Write(sc.names); err != nil {
		return 0, err
	}
	rec := make([]string, len(sc.names))
	var n int64
	for rows.Next() {
		vals, err := sc.scan(rows)
		if err != nil {
			return n, err
		}
		for i, v := range vals {
			rec[i] = csvValue(v)
		}
		if err := cw.Write(rec); err != nil {
			return n, err
		}
		n++
		if n%flushEvery == 0 {
			cw.Flush()
			if err := flush(bw, w); err != nil {
				return n, err
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return n, err
	}
	return n, flush(bw, w)
}

func csvValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case fmt.Stringer:
		return x.String()
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Map {
		b, _ := json.Marshal(v)
		return string(b)
	}
	return fmt.Sprint(v)
}

func flush(bw *bufio.Writer, w *echo.Response) error {
	if err := bw.Flush(); err != nil {
		return err
	}
	w.Flush()
	return nil
}
