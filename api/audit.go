package api

import (
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

	"github.com/syndb/federation/internal/store"
)

// auditTargetKey holds, on a request's context, the target its handler
// named for the audit log (see setAuditTarget).
const auditTargetKey = "audit_target"

// maxAuditText caps each text the audit log takes from a request.
const maxAuditText = 256

// setAuditTarget names what the call acted on, for its audit entry: the
// workflow or job it started, the node it enrolled. Without it the entry's
// target is the query's ID or the route's path parameters.
func setAuditTarget(c echo.Context, target string) { c.Set(auditTargetKey, target) }

// audited reports whether a request is audited: every call on /v1 but
// reads (GET, HEAD, OPTIONS), so every mutating call and every federated
// query (POST /v1/query, POST /v1/query/explain).
func audited(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return r.URL.Path == "/v1" || strings.HasPrefix(r.URL.Path, "/v1/")
}

// auditRequests gives every request an ID (the X-Request-Id header) and
// records each audited request once, however it ended: refused before its
// key was checked, by its role, by a limit or by its handler, or answered.
// Errors are answered here, so the entry has the status the client got.
func (s *Server) auditRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		id := uuid.NewString()
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		if err := next(c); err != nil {
			c.Error(err)
		}
		if audited(c.Request()) {
			s.auditLog.record(auditEntry(c, id, start))
		}
		return nil
	}
}

// auditEntry is the audit entry of the request answered on c. It holds no
// header, body or credential of the request or its answer.
func auditEntry(c echo.Context, requestID string, start time.Time) store.AuditEntry {
	resp := c.Response()
	e := store.AuditEntry{
		At:         start.UTC(),
		Method:     auditText(c.Request().Method),
		Route:      auditText(c.Path()),
		Target:     auditText(auditTarget(c)),
		Status:     resp.Status,
		Outcome:    auditOutcome(resp.Status, resp.Header()),
		DurationMS: time.Since(start).Milliseconds(),
		Client:     auditText(c.RealIP()),
		RequestID:  requestID,
	}
	if p, ok := principal(c); ok {
		e.KeyID, e.KeyName, e.Account, e.Role = p.KeyID, p.KeyName, p.Account, p.Role
	}
	return e
}

// auditTarget is what the handler named, else the query's ID, else the
// route's path parameters joined by "/".
func auditTarget(c echo.Context) string {
	if t, ok := c.Get(auditTargetKey).(string); ok && t != "" {
		return t
	}
	if id := c.Response().Header().Get(HeaderQueryID); id != "" {
		return id
	}
	return strings.Join(c.ParamValues(), "/")
}

// auditOutcome is ok, refused (4xx) or failed (5xx, or a query whose
// answer began and then failed: its X-Syndb-Error trailer is set).
func auditOutcome(status int, h http.Header) string {
	switch {
	case status >= http.StatusInternalServerError:
		return store.AuditFailed
	case status >= http.StatusBadRequest:
		return store.AuditRefused
	case h.Get(TrailerError) != "":
		return store.AuditFailed
	}
	return store.AuditOK
}

// auditText is s as PostgreSQL's text can hold it: valid UTF-8 without NUL,
// at most maxAuditText bytes.
func auditText(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= maxAuditText {
		return s
	}
	return strings.ToValidUTF8(s[:maxAuditText], "")
}

// AuditPage is the answer to GET /v1/audit.
type AuditPage struct {
	Entries []store.AuditEntry `json:"entries"`
	// Next is the URL of the next (older) page, empty on the last one.
	Next string `json:"next,omitempty"`
}

const (
	defaultAuditPage = 100
	maxAuditPage     = 1000
)

// listAudit is GET /v1/audit: the audit log, newest first, filtered by
// key_id, account, route, outcome, since and until, paged by before.
func (s *Server) listAudit(c echo.Context) error {
	if s.deps.Audit == nil {
		return errors.New("audit: no audit store")
	}
	f, err := auditFilter(c)
	if err != nil {
		return err
	}
	list, err := s.deps.Audit.AuditEntries(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := AuditPage{Entries: list}
	if len(list) == f.Limit {
		v := url.Values{}
		for _, name := range []string{"key_id", "account", "route", "outcome", "since", "until"} {
			if p := c.QueryParam(name); p != "" {
				v.Set(name, p)
			}
		}
		v.Set("limit", strconv.Itoa(f.Limit))
		v.Set("before", strconv.FormatInt(list[len(list)-1].ID, 10))
		out.Next = s.cfg.PublicURL + "/v1/audit?" + v.Encode()
	}
	return c.JSON(http.StatusOK, out)
}

// auditFilter reads GET /v1/audit's parameters.
func auditFilter(c echo.Context) (store.AuditFilter, error) {
	var f store.AuditFilter
	var err error
	if f.Limit, err = queryInt(c, "limit", defaultAuditPage, 1, maxAuditPage); err != nil {
		return f, err
	}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"key_id", &f.KeyID}, {"before", &f.Before}} {
		raw := c.QueryParam(p.name)
		if raw == "" {
			continue
		}
		if *p.dst, err = strconv.ParseInt(raw, 10, 64); err != nil || *p.dst < 1 {
			return f, errBadRequest(fmt.Sprintf("%s=%.40q is not a positive integer", p.name, raw))
		}
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"account", &f.Account}, {"route", &f.Route}, {"outcome", &f.Outcome}} {
		if *p.dst, err = queryText(c, p.name, maxTextParam); err != nil {
			return f, err
		}
	}
	if f.Outcome != "" && !slices.Contains(store.AuditOutcomes, f.Outcome) {
		return f, errBadRequest(fmt.Sprintf("outcome %.40q: use one of %s", f.Outcome, strings.Join(store.AuditOutcomes, ", ")))
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		raw := c.QueryParam(p.name)
		if raw == "" {
			continue
		}
		if *p.dst, err = time.Parse(time.RFC3339Nano, raw); err != nil {
			return f, errBadRequest(fmt.Sprintf("%s=%.40q is not an RFC 3339 time (2025-01-31T12:00:00Z)", p.name, raw))
		}
	}
	return f, nil
}
