package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

// queriesStore is what the query history needs of PostgreSQL.
type queriesStore interface {
	RecordQuery(ctx context.Context, r store.QueryRecord) error
	Query(ctx context.Context, id uuid.UUID) (store.Query, error)
	Queries(ctx context.Context, f store.QueryFilter) ([]store.Query, error)
	RequestQueryCancel(ctx context.Context, id uuid.UUID) (store.Query, error)
}

// QueryList is the answer to GET /v1/queries.
type QueryList struct {
	Queries []store.Query `json:"queries"`
	// Next is the URL of the next (older) page, empty on the last one.
	Next string `json:"next,omitempty"`
}

const (
	defaultQueriesPage = 50
	maxQueriesPage     = 500
	// killTimeout bounds the KILL QUERY of a cancel, killRetry is how
	// often it is tried again while it kills nothing.
	killTimeout = 3 * time.Second
	killRetry   = 100 * time.Millisecond
)

func (s *Server) queriesStore() (queriesStore, error) {
	if s.deps.Queries == nil {
		return nil, errors.New("queries: no query history store")
	}
	return s.deps.Queries, nil
}

func (s *Server) listQueries(c echo.Context) error {
	st, err := s.queriesStore()
	if err != nil {
		return err
	}
	outcome, err := queryText(c, "outcome", maxTextParam)
	if err != nil {
		return err
	}
	if outcome != "" && !slices.Contains(store.QueryOutcomes, outcome) {
		return errBadRequest(fmt.Sprintf("outcome %.40q: use one of %s", outcome, strings.Join(store.QueryOutcomes, ", ")))
	}
	limit, err := queryInt(c, "limit", defaultQueriesPage, 1, maxQueriesPage)
	if err != nil {
		return err
	}
	f := store.QueryFilter{Outcome: outcome, Limit: limit}
	if raw := c.QueryParam("cursor"); raw != "" {
		cur, err := decodeQueryCursor(raw)
		if err != nil {
			return err
		}
		f.After = &cur
	}
	if p, _ := principal(c); p.Role != store.RoleAdmin {
		f.KeyID = p.KeyID
	}
	list, err := st.Queries(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := QueryList{Queries: list}
	if len(list) == limit {
		last := list[len(list)-1]
		v := url.Values{"limit": {strconv.Itoa(limit)}, "cursor": {encodeQueryCursor(last)}}
		if outcome != "" {
			v.Set("outcome", outcome)
		}
		out.Next = s.cfg.PublicURL + "/v1/queries?" + v.Encode()
	}
	return c.JSON(http.StatusOK, out)
}

// encodeQueryCursor is the cursor of the page after q: its start (in
// microseconds) and ID.
func encodeQueryCursor(q store.Query) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%d.%s", q.StartedAt.UnixMicro(), q.ID)))
}

func decodeQueryCursor(raw string) (store.QueryCursor, error) {
	bad := errBadRequest(fmt.Sprintf("cursor %.60q is not a cursor of GET /v1/queries: use the next link of a page", raw))
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return store.QueryCursor{}, bad
	}
	micros, id, ok := strings.Cut(string(b), ".")
	if !ok {
		return store.QueryCursor{}, bad
	}
	us, err := strconv.ParseInt(micros, 10, 64)
	if err != nil || us < 0 {
		return store.QueryCursor{}, bad
	}
	uid, err := uuid.Parse(id)
	if err != nil {
		return store.QueryCursor{}, bad
	}
	return store.QueryCursor{StartedAt: time.UnixMicro(us).UTC(), ID: uid}, nil
}

// queryByParam is the query of the path's {id} as the caller may see it:
// its own, or any for an admin. Another key's query is not found.
func (s *Server) queryByParam(c echo.Context) (store.Query, error) {
	st, err := s.queriesStore()
	if err != nil {
		return store.Query{}, err
	}
	raw := c.Param("id")
	id, err := uuid.Parse(raw)
	if err != nil {
		return store.Query{}, errBadRequest(fmt.Sprintf("query ID %.60q is not a UUID", raw))
	}
	q, err := st.Query(c.Request().Context(), id)
	if errors.Is(err, domain.ErrNotFound) || (err == nil && !maySeeQuery(c, q)) {
		return store.Query{}, errNotFound(fmt.Sprintf("no query %s", id))
	}
	return q, err
}

// maySeeQuery says whether the caller may see and cancel q: an admin any
// query, another key only those it ran.
func maySeeQuery(c echo.Context, q store.Query) bool {
	p, ok := principal(c)
	if !ok {
		return false
	}
	return p.Role == store.RoleAdmin || (q.KeyID != 0 && q.KeyID == p.KeyID)
}

func (s *Server) getQuery(c echo.Context) error {
	q, err := s.queryByParam(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, q)
}

// cancelQuery marks a running query cancel-requested, then kills it on the
// hub's ClickHouse, which every API replica shares: the kill stops its
// remote() parts on the nodes too, and the replica serving it records it
// cancelled when its stream fails.
func (s *Server) cancelQuery(c echo.Context) error {
	q, err := s.queryByParam(c)
	if err != nil {
		return err
	}
	if q.Outcome != store.QueryRunning {
		return errConflict(fmt.Sprintf("query %s is not running (%s)", q.ID, q.Outcome))
	}
	ctx := c.Request().Context()
	q, err = s.deps.Queries.RequestQueryCancel(ctx, q.ID)
	if err != nil {
		return err
	}
	if q.Outcome != store.QueryRunning {
		return errConflict(fmt.Sprintf("query %s is not running (%s)", q.ID, q.Outcome))
	}
	if err := s.killQuery(ctx, q.ID); err != nil {
		s.deps.Log.Warn("kill query failed", "query_id", q.ID, "err", err)
		return &apiError{http.StatusBadGateway, "upstream", "the hub warehouse did not kill the query: " + s.redact(firstLine(err.Error()))}
	}
	s.deps.Log.Info("query cancel requested", "query_id", q.ID, "by", keyName(c))
	return c.JSON(http.StatusAccepted, q)
}

// killQuery kills the query id on the hub's ClickHouse as the warehouse
// (admin) user: the query user is read-only. The ID is bound as a
// parameter, never spliced. A query recorded running that ClickHouse does
// not run yet (its statement is on its way) is killed again, every
// killRetry, until it is killed, ends or killTimeout passes.
func (s *Server) killQuery(ctx context.Context, id uuid.UUID) error {
	if s.deps.Warehouse == nil {
		return errors.New("no hub warehouse connection")
	}
	ctx, cancel := context.WithTimeout(ctx, killTimeout)
	defer cancel()
	tick := time.NewTicker(killRetry)
	defer tick.Stop()
	for {
		killed, err := s.killOnce(ctx, id)
		if err != nil || killed > 0 {
			return err
		}
		if q, err := s.deps.Queries.Query(ctx, id); err != nil || q.Outcome != store.QueryRunning {
			return nil
		}
		select {
		case <-ctx.Done():
			s.deps.Log.Warn("query to cancel never ran on the hub warehouse", "query_id", id)
			return nil
		case <-tick.C:
		}
	}
}

// killOnce runs KILL QUERY for id and counts the queries it killed.
func (s *Server) killOnce(ctx context.Context, id uuid.UUID) (int, error) {
	rows, err := s.deps.Warehouse.Query(ctx, "KILL QUERY WHERE query_id = ?", id.String())
	if err != nil {
		return 0, fmt.Errorf("kill query %s: %w", id, err)
	}
	defer func() { _ = rows.Close() }()
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("kill query %s: %w", id, err)
	}
	return n, nil
}

func keyName(c echo.Context) string {
	p, _ := principal(c)
	return p.KeyName
}
