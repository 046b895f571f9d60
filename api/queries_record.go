package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

// HeaderQueryID is the response header of /v1/query that carries the
// query's ID: its row in GET /v1/queries/{id} and its query_id on the hub's
// ClickHouse.
const HeaderQueryID = "X-Syndb-Query-Id"

// maxRecordedSQL caps the SQL text kept in a query's row.
const maxRecordedSQL = 16 << 10

// recordTimeout bounds each write of a query's row; cancelCheckTimeout
// bounds the read, at the end of a query's answer, of whether it was
// cancelled.
const (
	recordTimeout      = 5 * time.Second
	cancelCheckTimeout = time.Second
)

// errCancelled ends the answer of a query cancelled by DELETE
// /v1/queries/{id}, on whichever API replica.
var errCancelled = &apiError{http.StatusConflict, "cancelled", "the query was cancelled (DELETE /v1/queries/{id}): this answer is cut short"}

// queryRun is one POST /v1/query from its ID to its end: what its row in
// the history says. Writing the row never fails or delays the query: the
// writes run in the background and a failed one is logged.
type queryRun struct {
	s       *Server
	rec     store.QueryRecord
	started time.Time
	// bytes sums the bytes ClickHouse reports read, from its progress
	// packets.
	bytes atomic.Int64
	// reqCtx is the request's context: when it ends before the query, the
	// client went away.
	reqCtx context.Context
	ended  bool
}

type queryRunKey struct{}

// beginQuery gives the request its query ID (a response header from now
// on) and starts its record.
func (s *Server) beginQuery(c echo.Context) *queryRun {
	id := uuid.New()
	c.Response().Header().Set(HeaderQueryID, id.String())
	p, _ := principal(c)
	now := time.Now()
	return &queryRun{s: s, started: now, reqCtx: c.Request().Context(), rec: store.QueryRecord{ID: id, By: p,
		Outcome: store.QueryRunning, StartedAt: now.UTC().Truncate(time.Microsecond)}}
}

// ID is the query's ID, as text.
func (r *queryRun) ID() string { return r.rec.ID.String() }

// describe sets the user's SQL of the query.
func (r *queryRun) describe(sql string) { r.rec.SQL = recordedSQL(sql) }

// start records the query running and returns ctx carrying the run, so
// the statement runs on ClickHouse under the query's ID (see runContext).
func (r *queryRun) start(ctx context.Context) context.Context {
	r.save(r.rec)
	return context.WithValue(ctx, queryRunKey{}, r)
}

// finish sets how the query ended: meta's nodes and rows, and err (nil when
// it succeeded). It returns err, for the handler to return.
func (r *queryRun) finish(meta QueryMeta, err error) error {
	r.ended = true
	r.rec.Nodes, r.rec.Rows = meta.Included, meta.Rows
	switch {
	case err == nil:
		r.rec.Outcome = store.QueryOK
		return nil
	case errors.Is(err, errCancelled), errors.Is(r.reqCtx.Err(), context.Canceled):
		r.rec.Outcome = store.QueryCancelled
	default:
		r.rec.Outcome = store.QueryFailed
		var ae *apiError
		if errors.As(err, &ae) && ae.status < http.StatusInternalServerError && meta.Error == "" {
			r.rec.Outcome = store.QueryRefused
		}
	}
	r.rec.Error = meta.Error
	if r.rec.Error == "" {
		r.rec.Error = r.s.clientMessage(err)
	}
	return err
}

// cancelled is err or, when a cancel of the query was requested, errCancelled.
// ClickHouse may end the stream of a killed query without an error, its
// answer cut short: the query's row, which a DELETE on any replica marks
// before the kill, says whether it was asked to stop. A query asked to stop
// is reported cancelled even if it ended just before the kill.
func (r *queryRun) cancelled(err error) error {
	st := r.s.deps.Queries
	if st == nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.reqCtx), cancelCheckTimeout)
	defer cancel()
	q, qerr := st.Query(ctx, r.rec.ID)
	switch {
	case errors.Is(qerr, domain.ErrNotFound):
		return err
	case qerr != nil:
		r.s.deps.Log.Warn("query history: cancel not checked", "query_id", r.rec.ID, "err", qerr)
		return err
	case q.CancelRequestedAt != nil:
		return errCancelled
	}
	return err
}

// end writes the query's last record; a run that never reached finish
// (the handler panicked) is recorded failed.
func (r *queryRun) end() {
	if !r.ended {
		r.rec.Outcome, r.rec.Error = store.QueryFailed, "internal error"
	}
	r.rec.Duration = time.Since(r.started)
	r.rec.BytesRead = r.bytes.Load()
	r.save(r.rec)
}

// save writes rec in the background.
func (r *queryRun) save(rec store.QueryRecord) {
	st := r.s.deps.Queries
	if st == nil {
		return
	}
	log := r.s.deps.Log
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.reqCtx), recordTimeout)
		defer cancel()
		if err := st.RecordQuery(ctx, rec); err != nil {
			log.Warn("query history not recorded", "query_id", rec.ID, "outcome", rec.Outcome, "err", err)
		}
	}()
}

// runContext is ctx with the ClickHouse options of the query run it
// carries, if any: the statement runs under the query's ID, and its
// progress adds up the bytes it read. Only the statement itself gets them
// (never a probe of a node, which must not share the ID).
func runContext(ctx context.Context) context.Context {
	r, ok := ctx.Value(queryRunKey{}).(*queryRun)
	if !ok {
		return ctx
	}
	return chgo.Context(ctx, chgo.WithQueryID(r.ID()), chgo.WithProgress(func(p *chgo.Progress) {
		r.bytes.Add(int64(p.Bytes))
	}))
}

// clientMessage is what the client was told of err, without credentials.
func (s *Server) clientMessage(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return s.redact(ae.message)
	}
	return "internal error"
}

// recordedSQL is sql as its row keeps it: valid UTF-8 without NUL
// characters (which PostgreSQL cannot store), at most maxRecordedSQL bytes.
func recordedSQL(sql string) string {
	sql = strings.ReplaceAll(strings.ToValidUTF8(sql, "\uFFFD"), "\x00", "")
	if len(sql) <= maxRecordedSQL {
		return sql
	}
	cut := maxRecordedSQL
	for cut > 0 && !utf8.RuneStart(sql[cut]) {
		cut--
	}
	return sql[:cut] + "…"
}
