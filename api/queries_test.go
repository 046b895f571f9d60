package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/registry"
	"github.com/syndb/federation/internal/store"
)

// fakeQueries is an in-memory query history.
type fakeQueries struct {
	mu      sync.Mutex
	rows    map[uuid.UUID]store.Query
	filters []store.QueryFilter
}

func (f *fakeQueries) RecordQuery(context.Context, store.QueryRecord) error { return nil }

func (f *fakeQueries) Query(_ context.Context, id uuid.UUID) (store.Query, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q, ok := f.rows[id]
	if !ok {
		return store.Query{}, domain.ErrNotFound
	}
	return q, nil
}

func (f *fakeQueries) Queries(_ context.Context, flt store.QueryFilter) ([]store.Query, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters = append(f.filters, flt)
	return []store.Query{}, nil
}

func (f *fakeQueries) RequestQueryCancel(ctx context.Context, id uuid.UUID) (store.Query, error) {
	return f.Query(ctx, id)
}

func (f *fakeQueries) lastFilter() store.QueryFilter {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.filters[len(f.filters)-1]
}

// TestQueryRoutes: who sees and cancels which query, and the 400s of bad
// parameters, on the real router with an in-memory history.
func TestQueryRoutes(t *testing.T) {
	t.Parallel()
	mine, others, done := uuid.New(), uuid.New(), uuid.New()
	qs := &fakeQueries{rows: map[uuid.UUID]store.Query{
		mine:   {ID: mine, KeyID: 8, Outcome: store.QueryRunning},
		others: {ID: others, KeyID: 99, Outcome: store.QueryRunning},
		done:   {ID: done, KeyID: 8, Outcome: store.QueryOK},
	}}
	reg, err := registry.New(t.Context(), fakeStore{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	s := New(config.API{PublicURL: "http://hub"}, Deps{Store: fakeStore{}, Registry: reg, Log: slog.New(slog.DiscardHandler), Queries: qs})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name, method, path, key string
		status                  int
		code                    string
	}{
		{"own query", http.MethodGet, "/v1/queries/" + mine.String(), readerKey, 200, ""},
		{"another key's query", http.MethodGet, "/v1/queries/" + others.String(), readerKey, 404, codeNotFound},
		{"an admin sees any", http.MethodGet, "/v1/queries/" + others.String(), goodKey, 200, ""},
		{"unknown", http.MethodGet, "/v1/queries/" + uuid.NewString(), readerKey, 404, codeNotFound},
		{"not a UUID", http.MethodGet, "/v1/queries/nope", readerKey, 400, codeBadRequest},
		{"cancel another key's", http.MethodDelete, "/v1/queries/" + others.String(), operatorKey, 404, codeNotFound},
		{"cancel a finished one", http.MethodDelete, "/v1/queries/" + done.String(), readerKey, 409, codeConflict},
		{"cancel a bad ID", http.MethodDelete, "/v1/queries/x'%20OR%201", readerKey, 400, codeBadRequest},
		{"cancel, no warehouse to kill on", http.MethodDelete, "/v1/queries/" + mine.String(), readerKey, 502, "upstream"},
		{"unknown outcome", http.MethodGet, "/v1/queries?outcome=done", readerKey, 400, codeBadRequest},
		{"bad cursor", http.MethodGet, "/v1/queries?cursor=zz", readerKey, 400, codeBadRequest},
		{"cursor without an ID", http.MethodGet, "/v1/queries?cursor=MTIz", readerKey, 400, codeBadRequest},
		{"limit too big", http.MethodGet, "/v1/queries?limit=501", readerKey, 400, codeBadRequest},
		{"list", http.MethodGet, "/v1/queries", readerKey, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, eb, raw := do(t, srv, tc.method, tc.path, "Bearer "+tc.key, "")
			require.Equal(t, tc.status, status, string(raw))
			require.Equal(t, tc.code, eb.Error.Code)
		})
	}

	// A reader's list is its own key's; an admin's every key's; the cursor
	// of a page's last row starts the next.
	do(t, srv, http.MethodGet, "/v1/queries?outcome=running", "Bearer "+readerKey, "")
	require.Equal(t, store.QueryFilter{KeyID: 8, Outcome: store.QueryRunning, Limit: defaultQueriesPage}, qs.lastFilter())
	last := store.Query{ID: uuid.New(), StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)}
	do(t, srv, http.MethodGet, "/v1/queries?limit=3&cursor="+url.QueryEscape(encodeQueryCursor(last)), "Bearer "+goodKey, "")
	require.Equal(t, store.QueryFilter{Limit: 3, After: &store.QueryCursor{StartedAt: last.StartedAt, ID: last.ID}}, qs.lastFilter())
}

func TestRecordedSQL(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", maxRecordedSQL)
	for _, tc := range []struct{ name, in, want string }{
		{"as is", "SELECT 1", "SELECT 1"},
		{"NUL dropped", "SELECT\x00 1", "SELECT 1"},
		{"invalid UTF-8 replaced", "SELECT '\xff'", "SELECT '\uFFFD'"},
		{"capped on a rune", "x" + long, ("x" + long)[:maxRecordedSQL-1] + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := recordedSQL(tc.in)
			require.Equal(t, tc.want, got)
			require.True(t, utf8.ValidString(got))
		})
	}
}

// TestQueryRunOutcome: how a query's end becomes its row's outcome and
// error, from the error the handler ends with.
func TestQueryRunOutcome(t *testing.T) {
	t.Parallel()
	s := New(config.API{Query: config.Query{RemotePassword: "s3cret"}}, Deps{Log: slog.New(slog.DiscardHandler)})
	for _, tc := range []struct {
		name             string
		meta             QueryMeta
		err              error
		outcome, message string
	}{
		{"ok", QueryMeta{Included: []string{"lab-a"}, Rows: 3}, nil, store.QueryOK, ""},
		{"refused", QueryMeta{}, errBadRequest("only SELECT is allowed"), store.QueryRefused, "only SELECT is allowed"},
		{"failed before streaming", QueryMeta{}, &apiError{http.StatusBadGateway, "upstream", "boom at s3cret"}, store.QueryFailed, "boom at ***"},
		{"failed while streaming", QueryMeta{Rows: 2, Error: "the hub warehouse failed"}, errBadRequest("x"), store.QueryFailed, "the hub warehouse failed"},
		{"internal", QueryMeta{}, errors.New("pool closed: s3cret"), store.QueryFailed, "internal error"},
		{"cancelled", QueryMeta{Rows: 5, Error: errCancelled.message}, errCancelled, store.QueryCancelled, errCancelled.message},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1/query", nil)
			c := s.e.NewContext(req, httptest.NewRecorder())
			run := s.beginQuery(c)
			require.ErrorIs(t, run.finish(tc.meta, tc.err), tc.err)
			require.Equal(t, tc.outcome, run.rec.Outcome)
			require.Equal(t, tc.message, run.rec.Error)
			require.Equal(t, tc.meta.Rows, run.rec.Rows)
			require.Equal(t, run.ID(), c.Response().Header().Get(HeaderQueryID))
		})
	}
}
