package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/workflows"
)

// auditOf is GET /v1/audit with params, as the federation's admin key.
func auditOf(t *testing.T, params string) []store.AuditEntry {
	t.Helper()
	status, raw := apiDo(t, http.MethodGet, "/v1/audit"+params, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var page api.AuditPage
	require.NoError(t, json.Unmarshal(raw, &page))
	return page.Entries
}

// auditCall is one call of the audit test and the entry it must leave.
type auditCall struct {
	key                roleKey
	method, path, body string
	route, target      string
	status             int
	outcome            string
	// targetFromHeader takes the target from the answer's query ID.
	targetFromHeader bool
	// requestID and answer are the answer's, once made.
	requestID string
	answer    []byte
}

// do makes the call on the federation's API and keeps its request ID.
func (c *auditCall) do(t *testing.T) {
	t.Helper()
	status, h, raw := callAt(t, fed.APIURL, c.key.key, c.method, c.path, c.body)
	require.Equal(t, c.status, status, "%s %s: %s", c.method, c.path, raw)
	c.requestID, c.answer = h.Get("X-Request-Id"), raw
	require.NotEmpty(t, c.requestID, "every answer has a request ID")
	if c.targetFromHeader {
		c.target = h.Get(api.HeaderQueryID)
		require.NotEmpty(t, c.target)
	}
}

// TestSecAudit: a fresh operator key's and a fresh admin key's mutating
// calls and federated queries, answered, refused by role, by the handler,
// by the body cap, and a call without a key, are each in the audit log
// once (GET /v1/audit, and PostgreSQL counted directly), with the key,
// route pattern, target, status and outcome; reads are not; GET /v1/audit
// filters and pages; and no key, enrolment token or created key appears in
// any row of audit_log.
func TestSecAudit(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	op := newKey(t, "audit-op", store.RoleOperator)
	admin := newKey(t, "audit-admin", store.RoleAdmin)
	conn := pg(t)
	node := fmt.Sprintf("sec-audit-%d", time.Now().UnixNano()%1_000_000)
	t.Cleanup(func() {
		_, _ = apiDoCtx(context.Background(), t, http.MethodDelete, "/v1/federation/clusters/"+node, "")
	})
	missing := uuid.NewString()
	count := `{"sql": "SELECT count() AS n FROM neuron"}`
	opCalls := []*auditCall{
		{key: op, method: http.MethodPost, path: "/v1/federation/health/sweep", route: "/v1/federation/health/sweep",
			target: workflows.HealthMonitorID, status: http.StatusAccepted, outcome: store.AuditOK},
		{key: op, method: http.MethodPost, path: "/v1/query", body: count, route: "/v1/query", targetFromHeader: true,
			status: http.StatusOK, outcome: store.AuditOK},
		{key: op, method: http.MethodPost, path: "/v1/query/explain", body: count, route: "/v1/query/explain",
			status: http.StatusOK, outcome: store.AuditOK},
		{key: op, method: http.MethodPost, path: "/v1/query", body: `{"sql": "DROP TABLE neuron"}`, route: "/v1/query",
			targetFromHeader: true, status: http.StatusBadRequest, outcome: store.AuditRefused},
		{key: op, method: http.MethodPost, path: "/v1/federation/clusters", body: `{"name": "` + node + `-op"}`,
			route: "/v1/federation/clusters", status: http.StatusForbidden, outcome: store.AuditRefused},
		{key: op, method: http.MethodDelete, path: "/v1/jobs/" + missing, route: "/v1/jobs/:id", target: missing,
			status: http.StatusNotFound, outcome: store.AuditRefused},
		{key: op, method: http.MethodPost, path: "/v1/federation/schema/sync", body: `{"concurrency": 1` + strings.Repeat(" ", 8<<10) + `}`,
			route: "/v1/federation/schema/sync", status: http.StatusRequestEntityTooLarge, outcome: store.AuditRefused},
	}
	for _, c := range opCalls {
		c.do(t)
	}
	// Reads are not audited.
	status, _, raw := callAt(t, fed.APIURL, op.key, http.MethodGet, "/v1/jobs?limit=1", "")
	require.Equal(t, http.StatusOK, status, string(raw))

	enrol := &auditCall{key: admin, method: http.MethodPost, path: "/v1/federation/clusters", body: `{"name": "` + node + `"}`,
		route: "/v1/federation/clusters", target: node, status: http.StatusCreated, outcome: store.AuditOK}
	enrol.do(t)
	var enrolment store.Enrollment
	require.NoError(t, json.Unmarshal(enrol.answer, &enrolment))
	require.NotEmpty(t, enrolment.Token)
	mint := &auditCall{key: admin, method: http.MethodPost, path: "/v1/apikeys", body: `{"name": "` + node + `", "role": "reader"}`,
		route: "/v1/apikeys", status: http.StatusCreated, outcome: store.AuditOK}
	mint.do(t)
	var minted api.CreatedKey
	require.NoError(t, json.Unmarshal(mint.answer, &minted))
	require.NotEmpty(t, minted.Key)
	adminCalls := []*auditCall{enrol, mint,
		{key: admin, method: http.MethodDelete, path: fmt.Sprintf("/v1/apikeys/%d", minted.ID), route: "/v1/apikeys/:id",
			target: fmt.Sprint(minted.ID), status: http.StatusOK, outcome: store.AuditOK},
		{key: admin, method: http.MethodDelete, path: "/v1/federation/clusters/" + node, route: "/v1/federation/clusters/:name",
			target: node, status: http.StatusOK, outcome: store.AuditOK},
	}
	for _, c := range adminCalls[2:] {
		c.do(t)
	}
	anonymous := &auditCall{method: http.MethodPost, path: "/v1/federation/health/sweep", route: "/v1/federation/health/sweep",
		status: http.StatusUnauthorized, outcome: store.AuditRefused}
	anonymous.do(t)

	for _, tc := range []struct {
		key   roleKey
		calls []*auditCall
	}{{op, opCalls}, {admin, adminCalls}} {
		var got []store.AuditEntry
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		require.NoError(t, pollUntil(ctx, func() error {
			got = auditOf(t, fmt.Sprintf("?key_id=%d", tc.key.id))
			if len(got) < len(tc.calls) {
				return fmt.Errorf("%d of %d entries of %s", len(got), len(tc.calls), tc.key.name)
			}
			return nil
		}))
		cancel()
		require.Len(t, got, len(tc.calls), "each call once, the read not at all")
		require.Equal(t, len(tc.calls), countRows(t, conn, `SELECT count(*) FROM audit_log WHERE key_id = $1`, tc.key.id))
		byID := map[string]store.AuditEntry{}
		for i, e := range got {
			byID[e.RequestID] = e
			if i > 0 {
				require.Less(t, e.ID, got[i-1].ID, "newest first")
			}
		}
		for _, c := range tc.calls {
			e, ok := byID[c.requestID]
			require.True(t, ok, "%s %s (%d) is audited", c.method, c.path, c.status)
			require.Equal(t, store.AuditEntry{ID: e.ID, At: e.At, KeyID: tc.key.id, KeyName: tc.key.name, Account: "sec-" + tc.key.name,
				Role: tc.key.role, Method: c.method, Route: c.route, Target: c.target, Status: c.status, Outcome: c.outcome,
				DurationMS: e.DurationMS, Client: "127.0.0.1", RequestID: c.requestID}, e, "%s %s", c.method, c.path)
			require.WithinDuration(t, time.Now(), e.At, time.Minute)
			require.GreaterOrEqual(t, e.DurationMS, int64(0))
		}
	}

	// The call without a key: audited with no key.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		for _, e := range auditOf(t, "?route=/v1/federation/health/sweep&outcome=refused&limit=1000") {
			if e.RequestID == anonymous.requestID {
				require.Zero(t, e.KeyID)
				require.Empty(t, e.KeyName)
				require.Equal(t, http.StatusUnauthorized, e.Status)
				return nil
			}
		}
		return fmt.Errorf("no entry of the call without a key")
	}))
	require.Equal(t, 1, countRows(t, conn, `SELECT count(*) FROM audit_log WHERE request_id = $1 AND key_id IS NULL`, anonymous.requestID))

	// Filters and pages.
	refused := auditOf(t, fmt.Sprintf("?key_id=%d&outcome=refused", op.id))
	require.Len(t, refused, 4)
	queries := auditOf(t, fmt.Sprintf("?key_id=%d&route=/v1/query", op.id))
	require.Len(t, queries, 2)
	for _, e := range queries {
		require.Equal(t, "/v1/query", e.Route)
	}
	all := auditOf(t, fmt.Sprintf("?key_id=%d", op.id))
	var paged []store.AuditEntry
	params := fmt.Sprintf("?key_id=%d&limit=3", op.id)
	for params != "" {
		status, raw := apiDo(t, http.MethodGet, "/v1/audit"+params, "")
		require.Equal(t, http.StatusOK, status, string(raw))
		var page api.AuditPage
		require.NoError(t, json.Unmarshal(raw, &page))
		paged = append(paged, page.Entries...)
		params = ""
		if page.Next != "" {
			params = page.Next[strings.Index(page.Next, "?"):]
		}
	}
	require.Equal(t, all, paged, "page by page, the whole log of the key")
	first := all[len(all)-1].At
	require.Len(t, auditOf(t, fmt.Sprintf("?key_id=%d&since=%s", op.id, first.Add(time.Microsecond).Format(time.RFC3339Nano))), len(all)-1)
	require.Len(t, auditOf(t, fmt.Sprintf("?key_id=%d&until=%s", op.id, first.Add(time.Microsecond).Format(time.RFC3339Nano))), 1)
	for _, bad := range []string{"?limit=0", "?limit=1001", "?key_id=x", "?outcome=nope", "?since=yesterday", "?before=-3"} {
		status, raw := apiDo(t, http.MethodGet, "/v1/audit"+bad, "")
		requireError(t, http.StatusBadRequest, status, raw, "bad_request", bad)
	}
	status, _, raw = callAt(t, fed.APIURL, op.key, http.MethodGet, "/v1/audit", "")
	requireError(t, http.StatusForbidden, status, raw, "forbidden", "an operator reads no audit log")

	// No secret anywhere in the log: the keys, the enrolment token, the
	// created key.
	for name, secret := range map[string]string{"operator key": op.key, "admin key": admin.key, "dev key": fed.APIKey,
		"enrolment token": enrolment.Token, "created key": minted.Key} {
		require.Zero(t, countRows(t, conn, `SELECT count(*) FROM audit_log a WHERE strpos(a::text, $1) > 0`, secret),
			"the %s is in audit_log", name)
	}
}
