package store_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/store"
)

// TestAuditLog: entries written in one batch read back whole, newest
// first, by each filter and page by page; the oracle is the rows counted
// straight from PostgreSQL.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	st, conn := catalogTestStore(t)
	ctx := t.Context()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	entry := func(i int, key int64, account, route, outcome string, status int) store.AuditEntry {
		return store.AuditEntry{At: t0.Add(time.Duration(i) * time.Minute), KeyID: key, KeyName: "k", Account: account,
			Role: store.RoleReader, Method: "POST", Route: route, Target: "t", Status: status, Outcome: outcome,
			DurationMS: int64(i), Client: "127.0.0.1", RequestID: "r"}
	}
	entries := []store.AuditEntry{
		entry(0, 7, "lab-a", "/v1/query", store.AuditOK, 200),
		entry(1, 7, "lab-a", "/v1/jobs", store.AuditRefused, 403),
		entry(2, 0, "", "/v1/jobs", store.AuditRefused, 401),
		entry(3, 9, "lab-b", "/v1/query", store.AuditFailed, 502),
		entry(4, 7, "lab-a", "/v1/query", store.AuditRefused, 429),
	}
	require.NoError(t, st.RecordAudit(ctx, entries))
	require.Equal(t, 5, countAudit(t, conn, `SELECT count(*) FROM audit_log`))
	require.Equal(t, 1, countAudit(t, conn, `SELECT count(*) FROM audit_log WHERE key_id IS NULL AND status = 401`),
		"a call without a key has no key_id")

	all, err := st.AuditEntries(ctx, store.AuditFilter{Limit: 10})
	require.NoError(t, err)
	require.Len(t, all, 5)
	for i, e := range all {
		want := entries[4-i]
		want.ID = e.ID
		require.Equal(t, want, e, "newest first")
		if i > 0 {
			require.Less(t, e.ID, all[i-1].ID)
		}
	}
	ids := func(f store.AuditFilter) []int64 {
		f.Limit = max(f.Limit, 10)
		got, err := st.AuditEntries(ctx, f)
		require.NoError(t, err)
		out := []int64{}
		for _, e := range got {
			out = append(out, e.DurationMS)
		}
		return out
	}
	require.Equal(t, []int64{4, 1, 0}, ids(store.AuditFilter{KeyID: 7}))
	require.Equal(t, []int64{3}, ids(store.AuditFilter{Account: "lab-b"}))
	require.Equal(t, []int64{4, 3, 0}, ids(store.AuditFilter{Route: "/v1/query"}))
	require.Equal(t, []int64{4, 2, 1}, ids(store.AuditFilter{Outcome: store.AuditRefused}))
	require.Equal(t, []int64{3, 2}, ids(store.AuditFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(4 * time.Minute)}))
	require.Equal(t, []int64{4}, ids(store.AuditFilter{KeyID: 7, Route: "/v1/query", Outcome: store.AuditRefused}))

	var paged []int64
	before := int64(0)
	for {
		page, err := st.AuditEntries(ctx, store.AuditFilter{Limit: 2, Before: before})
		require.NoError(t, err)
		for _, e := range page {
			paged = append(paged, e.DurationMS)
		}
		if len(page) < 2 {
			break
		}
		before = page[len(page)-1].ID
	}
	require.Equal(t, []int64{4, 3, 2, 1, 0}, paged)
}

func countAudit(t *testing.T, conn *pgx.Conn, query string) int {
	t.Helper()
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), query).Scan(&n))
	return n
}
