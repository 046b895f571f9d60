package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/registry"
	"github.com/syndb/federation/internal/store"
)

// fakeAudit is an in-memory audit log; RecordAudit waits on hold when set.
type fakeAudit struct {
	mu      sync.Mutex
	entries []store.AuditEntry
	batches int
	filters []store.AuditFilter
	hold    chan struct{}
	entered chan struct{}
}

func (f *fakeAudit) RecordAudit(_ context.Context, entries []store.AuditEntry) error {
	if f.hold != nil {
		f.entered <- struct{}{}
		<-f.hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, entries...)
	f.batches++
	return nil
}

func (f *fakeAudit) AuditEntries(_ context.Context, flt store.AuditFilter) ([]store.AuditEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters = append(f.filters, flt)
	var out []store.AuditEntry
	for i := range flt.Limit {
		out = append(out, store.AuditEntry{ID: int64(100 - i)})
	}
	return out, nil
}

func (f *fakeAudit) recorded() []store.AuditEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.AuditEntry(nil), f.entries...)
}

// auditedServer is the API on the in-memory stores, with its audit log
// written to fa; close writes what is left.
func auditedServer(t *testing.T, fa *fakeAudit) (srv *httptest.Server, closeLog func()) {
	t.Helper()
	reg, err := registry.New(t.Context(), fakeStore{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	s := New(config.API{PublicURL: "http://hub", Audit: config.Audit{Buffer: 64}},
		Deps{Store: fakeStore{}, Registry: reg, Audit: fa, Log: slog.New(slog.DiscardHandler)})
	s.auditLog.start()
	srv = httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv, s.auditLog.Close
}

// TestAuditEntries: every mutating call is audited once, with its key, its
// route's pattern, its target, its status and outcome, refused ones
// (no key, a lower role, a body over the cap, a bad request) too; reads
// are not; no entry holds a key or the enrolment token an answer carried.
func TestAuditEntries(t *testing.T) {
	t.Parallel()
	fa := &fakeAudit{}
	srv, closeLog := auditedServer(t, fa)
	type call struct {
		method, path, auth, body string
		want                     store.AuditEntry
	}
	calls := []call{
		{http.MethodPost, "/v1/federation/clusters", goodKey, `{"name": "lab-c"}`, store.AuditEntry{KeyID: 1, KeyName: "test",
			Account: "default", Role: store.RoleAdmin, Route: "/v1/federation/clusters", Target: "lab-c", Status: 201, Outcome: store.AuditOK}},
		{http.MethodPost, "/v1/federation/clusters", readerKey, `{"name": "lab-d"}`, store.AuditEntry{KeyID: 8, KeyName: "reader",
			Account: "default", Role: store.RoleReader, Route: "/v1/federation/clusters", Status: 403, Outcome: store.AuditRefused}},
		{http.MethodPost, "/v1/federation/clusters", "", `{"name": "lab-e"}`, store.AuditEntry{Route: "/v1/federation/clusters",
			Status: 401, Outcome: store.AuditRefused}},
		{http.MethodDelete, "/v1/federation/clusters/lab-z", goodKey, "", store.AuditEntry{KeyID: 1, KeyName: "test",
			Account: "default", Role: store.RoleAdmin, Route: "/v1/federation/clusters/:name", Target: "lab-z", Status: 404, Outcome: store.AuditRefused}},
		{http.MethodPost, "/v1/federation/clusters", goodKey, `{"name": "` + strings.Repeat("x", 8<<10) + `"}`, store.AuditEntry{KeyID: 1,
			KeyName: "test", Account: "default", Role: store.RoleAdmin, Route: "/v1/federation/clusters", Status: 413, Outcome: store.AuditRefused}},
		{http.MethodPost, "/v1/federation/clusters", goodKey, `{"name": "Lab C"}`, store.AuditEntry{KeyID: 1, KeyName: "test",
			Account: "default", Role: store.RoleAdmin, Route: "/v1/federation/clusters", Status: 400, Outcome: store.AuditRefused}},
	}
	var answers []string
	for _, c := range calls {
		req, err := http.NewRequestWithContext(t.Context(), c.method, srv.URL+c.path, strings.NewReader(c.body))
		require.NoError(t, err)
		if c.auth != "" {
			req.Header.Set("Authorization", "Bearer "+c.auth)
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		var raw bytes.Buffer
		_, _ = raw.ReadFrom(resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, c.want.Status, resp.StatusCode, "%s %s: %s", c.method, c.path, raw.String())
		answers = append(answers, resp.Header.Get("X-Request-Id"))
	}
	// Reads are not audited.
	status, _, raw := do(t, srv, http.MethodGet, "/v1/federation/clusters", "Bearer "+goodKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	closeLog()

	got := fa.recorded()
	require.Len(t, got, len(calls), "each call once, the read not at all")
	for i, e := range got {
		want := calls[i].want
		want.Method, want.At, want.DurationMS, want.Client = calls[i].method, e.At, e.DurationMS, "127.0.0.1"
		want.RequestID = answers[i]
		require.NotEmpty(t, want.RequestID)
		require.Equal(t, want, e, "call %d", i)
		require.WithinDuration(t, time.Now(), e.At, time.Minute)
		dump := fmt.Sprintf("%+v", e)
		for _, secret := range []string{goodKey, readerKey, "sdbenroll_x", "Bearer"} {
			require.NotContains(t, dump, secret)
		}
	}
}

// TestAuditBufferFull: an entry that finds the buffer full is dropped and
// counted, never waited for; Close writes what waits and logs the drops;
// an entry after Close is dropped too.
func TestAuditBufferFull(t *testing.T) {
	t.Parallel()
	fa := &fakeAudit{hold: make(chan struct{}), entered: make(chan struct{}, 8)}
	var logs bytes.Buffer
	a := newAuditLog(fa, 2, slog.New(slog.NewTextHandler(&logs, nil)))
	a.start()
	a.record(store.AuditEntry{Route: "first"})
	<-fa.entered // the writer holds the first entry, in its insert
	for _, r := range []string{"second", "third", "dropped-1", "dropped-2"} {
		a.record(store.AuditEntry{Route: r})
	}
	require.Equal(t, int64(2), a.droppedTotal.Load())
	close(fa.hold)
	a.Close()
	a.record(store.AuditEntry{Route: "after close"})
	require.Equal(t, int64(3), a.droppedTotal.Load())
	var routes []string
	for _, e := range fa.recorded() {
		routes = append(routes, e.Route)
	}
	require.Equal(t, []string{"first", "second", "third"}, routes)
	require.Equal(t, 2, fa.batches, "the entries that waited went in one insert")
	require.Contains(t, logs.String(), "audit buffer full: entries dropped")
	require.Contains(t, logs.String(), "dropped=2")
}

// TestAuditList: GET /v1/audit passes its filters to the store, pages with
// before, and refuses bad parameters with a 400.
func TestAuditList(t *testing.T) {
	t.Parallel()
	fa := &fakeAudit{}
	srv, _ := auditedServer(t, fa)
	status, _, raw := do(t, srv, http.MethodGet,
		"/v1/audit?key_id=7&account=lab-a&route=/v1/query&outcome=refused&since=2025-01-01T00:00:00Z&until=2025-01-02T00:00:00.5Z&limit=3&before=900",
		"Bearer "+goodKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var page AuditPage
	require.NoError(t, json.Unmarshal(raw, &page))
	require.Len(t, page.Entries, 3)
	require.Equal(t, "http://hub/v1/audit?account=lab-a&before=98&key_id=7&limit=3&outcome=refused&route=%2Fv1%2Fquery&since=2025-01-01T00%3A00%3A00Z&until=2025-01-02T00%3A00%3A00.5Z",
		page.Next)
	fa.mu.Lock()
	f := fa.filters[0]
	fa.mu.Unlock()
	require.Equal(t, store.AuditFilter{KeyID: 7, Account: "lab-a", Route: "/v1/query", Outcome: store.AuditRefused,
		Since: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2025, 1, 2, 0, 0, 0, 5e8, time.UTC), Before: 900, Limit: 3}, f)

	for _, bad := range []string{"limit=0", "limit=1001", "key_id=x", "key_id=-1", "before=0", "outcome=nope",
		"since=yesterday", "until=2025-13-01T00:00:00Z", "account=%00"} {
		status, eb, _ := do(t, srv, http.MethodGet, "/v1/audit?"+bad, "Bearer "+goodKey, "")
		require.Equal(t, http.StatusBadRequest, status, bad)
		require.Equal(t, codeBadRequest, eb.Error.Code, bad)
	}
	status, _, _ = do(t, srv, http.MethodGet, "/v1/audit", "Bearer "+operatorKey, "")
	require.Equal(t, http.StatusForbidden, status, "the audit log is an admin's")
}

// TestAuditOutcome: 2xx is ok, 4xx refused, 5xx failed, and a query whose
// answer failed while it streamed is failed.
func TestAuditOutcome(t *testing.T) {
	t.Parallel()
	trailer := http.Header{}
	trailer.Set(TrailerError, "the hub warehouse failed the query")
	for _, tc := range []struct {
		status int
		h      http.Header
		want   string
	}{
		{200, http.Header{}, store.AuditOK}, {202, http.Header{}, store.AuditOK}, {200, trailer, store.AuditFailed},
		{401, http.Header{}, store.AuditRefused}, {429, http.Header{}, store.AuditRefused}, {413, http.Header{}, store.AuditRefused},
		{500, http.Header{}, store.AuditFailed}, {503, http.Header{}, store.AuditFailed},
	} {
		require.Equal(t, tc.want, auditOutcome(tc.status, tc.h), "%d %v", tc.status, tc.h)
	}
	require.Equal(t, "a\uFFFDb", auditText("a\xffb\x00"))
	require.Len(t, auditText(strings.Repeat("é", 300)), maxAuditText)
}
