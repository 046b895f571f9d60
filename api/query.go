package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/fedsql"
)

// QueryRequest is the body of POST /v1/query.
type QueryRequest struct {
	SQL string `json:"sql"`
	// Nodes limits the query to these nodes (all routable nodes when empty).
	Nodes []string `json:"nodes"`
	// Format is json (JSON lines, the default), csv or arrow (Arrow IPC
	// stream); the Accept header may choose it instead.
	Format string `json:"format"`
	// Scope is where joins and IN (subquery) run: node (the default: each
	// node joins its own rows, the hub merges) or fleet (the hub joins the
	// union of every node's rows, up to the join row cap).
	Scope string `json:"scope"`
	// Partial is the coverage policy: "allow" (the default), "deny",
	// {"min_nodes": N} or {"min_fraction": F}.
	Partial Coverage `json:"partial"`
}

// parse checks a query request's SQL.
func (s *Server) parse(req QueryRequest) (*fedsql.Parsed, error) {
	q := s.cfg.Query
	parsed, err := fedsql.Parse(req.SQL, s.catalog, fedsql.Options{
		MaxRows: q.MaxRows, MaxSeconds: int(q.Timeout.Seconds()), Scope: scopeOf(req.Scope),
		MaxJoinRows: q.MaxJoinRows,
	})
	if errors.Is(err, fedsql.ErrInvalid) {
		return nil, errBadRequest(err.Error())
	}
	return parsed, err
}

// QueryMeta says which nodes answered a query, which did not and why, and
// how it ended: the last JSON line of a json answer ({"_meta": …}), and
// headers and trailers of every answer.
type QueryMeta struct {
	// QueryID is the query's ID (also the X-Syndb-Query-Id header).
	QueryID  string   `json:"query_id"`
	Included []string `json:"included"`
	// Coverage is how many of the nodes the query would read answered.
	Coverage QueryCoverage      `json:"coverage"`
	Excluded []domain.Exclusion `json:"excluded"`
	// Paths is each included node's libp2p path from the hub (direct,
	// hole-punched, relayed) as the last health ping found it.
	Paths     map[string]string `json:"paths"`
	Rows      int64             `json:"rows"`
	Limit     int               `json:"limit"`
	Truncated bool              `json:"truncated,omitempty"`
	ElapsedMS int64             `json:"elapsed_ms"`
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
	run := s.beginQuery(c)
	defer run.end()
	var req QueryRequest
	if err := decodeJSON(c, &req); err != nil {
		return run.finish(QueryMeta{}, err)
	}
	run.describe(req.SQL)
	format, err := queryFormat(req.Format, c.Request().Header.Get("Accept"))
	if err != nil {
		return run.finish(QueryMeta{}, err)
	}
	q := s.cfg.Query
	parsed, err := s.parse(req)
	if err != nil {
		return run.finish(QueryMeta{}, err)
	}
	started := time.Now()
	ctx, cancel := context.WithTimeout(c.Request().Context(), q.Timeout)
	defer cancel()
	// The first row (or the end) has been read: a query that fails before
	// any row is an error status, never a 200.
	rows, meta, err := s.runFederated(run.start(ctx), parsed, req.Nodes, req.Partial)
	if err != nil {
		return run.finish(meta, err)
	}
	meta.QueryID = run.ID()
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
	if werr == nil && parsed.Capped && meta.Rows >= int64(meta.Limit) {
		// The answer reached the hub's row cap: more rows may exist.
		meta.Truncated = true
	}
	werr = run.cancelled(werr)
	meta.ElapsedMS = time.Since(started).Milliseconds()
	var failed *ErrorDetail
	if werr != nil {
		failed = s.streamError(werr)
		meta.Error = failed.Message
		s.deps.Log.Warn("query failed after streaming began", "query_id", meta.QueryID, "rows", meta.Rows, "err", meta.Error)
	}
	_ = run.finish(meta, werr)
	h.Set(TrailerRows, fmt.Sprint(meta.Rows))
	h.Set(TrailerError, meta.Error)
	if format == formatJSON {
		// The last line: the query's meta and, when it failed, the error in
		// the shape of every error body, so a reader of lines cannot take
		// a cut-short answer for a whole one.
		line, _ := json.Marshal(queryEnd{Meta: meta, Error: failed})
		_, _ = c.Response().Write(append(line, '\n'))
	}
	s.deps.Log.Info("query", "query_id", meta.QueryID, "tables", parsed.Tables, "nodes", len(meta.Included), "excluded", len(meta.Excluded),
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
		if clickhouse.Code(err) == clickhouse.CodeSetSizeLimitExceeded {
			return errBadRequest(fmt.Sprintf("a side of the join holds more than %d rows (SYNDB_QUERY_MAX_JOIN_ROWS): narrow it with WHERE, or join each node's own rows (scope node)",
				s.cfg.Query.MaxJoinRows))
		}
		if capped := s.capError(ex); capped != nil {
			return capped
		}
		if clickhouse.IsQueryFault(err) {
			return errBadRequest("clickhouse refused the query: " + s.redact(chDetail(ex.Message)))
		}
		return &apiError{http.StatusBadGateway, "upstream", "the hub warehouse failed the query: " + s.redact(chDetail(ex.Message))}
	}
	return fmt.Errorf("run query: %w", err)
}

// Error codes of a query over a cap.
const (
	codeResultTooLarge = "result_too_large"
	codeMemoryLimit    = "memory_limit_exceeded"
)

// capError is the client's answer to a query ClickHouse stopped at a cap
// of its result or memory, on the hub's ClickHouse (the API's settings) or
// on a node (the lab's gateway user's profile; ClickHouse says "Received
// from" the node's address then); nil for any other exception.
func (s *Server) capError(ex *chgo.Exception) error {
	q := s.cfg.Query
	onNode := strings.Contains(ex.Message, "Received from")
	detail := s.redact(chDetail(ex.Message))
	switch ex.Code {
	case clickhouse.CodeTooManyRowsOrBytes:
		if onNode {
			return &apiError{http.StatusBadRequest, codeResultTooLarge, "a node's share of the result is over its lab's cap " +
				"(max_result_rows, max_result_bytes of its gateway user): filter it with WHERE, aggregate it or add a LIMIT (" + detail + ")"}
		}
		return &apiError{http.StatusBadRequest, codeResultTooLarge, fmt.Sprintf("the result is over the hub's cap of %d rows "+
			"(SYNDB_QUERY_MAX_ROWS) or %d bytes (SYNDB_QUERY_MAX_RESULT_BYTES): filter it with WHERE, aggregate it or add a LIMIT (%s)",
			q.MaxRows, q.MaxResultBytes, detail)}
	case clickhouse.CodeMemoryLimitExceeded:
		if onNode {
			return &apiError{http.StatusBadRequest, codeMemoryLimit, "the query needs more memory on a node than its lab allows " +
				"(max_memory_usage of its gateway user): read fewer rows or columns, or group by fewer keys (" + detail + ")"}
		}
		return &apiError{http.StatusBadRequest, codeMemoryLimit, fmt.Sprintf("the query needs more than the %d bytes of memory "+
			"the hub allows it (SYNDB_QUERY_MAX_MEMORY): read fewer rows or columns, or group by fewer keys (%s)", q.MaxMemory, detail)}
	}
	return nil
}

// chDetail is ClickHouse's own message without the addresses of the
// servers it came through ("Received from host:port. DB::Exception: ") and
// without the server's stack trace.
func chDetail(msg string) string {
	msg = firstLine(msg)
	if i := strings.Index(msg, "Stack trace:"); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.LastIndex(msg, "DB::Exception: "); i >= 0 {
		msg = msg[i+len("DB::Exception: "):]
	}
	return strings.TrimSuffix(strings.TrimSpace(msg), ".")
}

// redact removes what must never reach a client or a log: the nodes'
// password and the compiled remote() calls.
func (s *Server) redact(msg string) string {
	for _, p := range []string{s.cfg.Query.RemotePassword, s.cfg.Query.GatewayPassword} {
		if p != "" {
			msg = strings.ReplaceAll(msg, p, "***")
		}
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
