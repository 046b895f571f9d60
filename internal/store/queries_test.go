package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

// TestQueryHistory: a query's row as recorded at its start and end, in
// either order, read back one by one and by page; a cancel request turns a
// failed end into cancelled. The oracle is the rows read straight from
// PostgreSQL.
func TestQueryHistory(t *testing.T) {
	t.Parallel()
	st, conn := catalogTestStore(t)
	ctx := t.Context()
	key, err := st.CreateAPIKey(ctx, "lab-q", "analyst", store.RoleReader)
	require.NoError(t, err)
	p, err := st.Authenticate(ctx, key)
	require.NoError(t, err)
	t0 := time.Now().UTC().Truncate(time.Microsecond)

	rec := func(n int, outcome string) store.QueryRecord {
		return store.QueryRecord{ID: uuid.New(), By: p, SQL: "SELECT count() FROM neuron", Outcome: outcome,
			StartedAt: t0.Add(time.Duration(n) * time.Second)}
	}
	ok := rec(0, store.QueryRunning)
	require.NoError(t, st.RecordQuery(ctx, ok))
	got, err := st.Query(ctx, ok.ID)
	require.NoError(t, err)
	require.Equal(t, store.QueryRunning, got.Outcome)
	require.Nil(t, got.FinishedAt)
	end := ok
	end.Outcome, end.Nodes, end.Rows, end.BytesRead, end.Duration = store.QueryOK, []string{"lab-a", "lab-b"}, 7, 4096, 1500*time.Millisecond
	require.NoError(t, st.RecordQuery(ctx, end))
	require.NoError(t, st.RecordQuery(ctx, ok), "a late start changes nothing")
	got, err = st.Query(ctx, ok.ID)
	require.NoError(t, err)
	require.Equal(t, store.Query{ID: ok.ID, KeyID: p.KeyID, KeyName: "analyst", Account: "lab-q", Role: store.RoleReader,
		SQL: ok.SQL, Nodes: []string{"lab-a", "lab-b"}, Rows: 7, BytesRead: 4096, DurationMS: 1500, Outcome: store.QueryOK,
		StartedAt: t0, FinishedAt: got.FinishedAt}, got)
	require.NotNil(t, got.FinishedAt)

	// The end first: the row is whole, and the start after it is ignored.
	refused := rec(1, store.QueryRefused)
	refused.Error = "only SELECT is allowed"
	require.NoError(t, st.RecordQuery(ctx, refused))
	refusedStart := refused
	refusedStart.Outcome = store.QueryRunning
	require.NoError(t, st.RecordQuery(ctx, refusedStart))

	// A cancel request marks a running query; its failed end is cancelled.
	killed := rec(2, store.QueryRunning)
	require.NoError(t, st.RecordQuery(ctx, killed))
	marked, err := st.RequestQueryCancel(ctx, killed.ID)
	require.NoError(t, err)
	require.Equal(t, store.QueryRunning, marked.Outcome)
	require.NotNil(t, marked.CancelRequestedAt)
	killed.Outcome, killed.Error = store.QueryFailed, "Query was cancelled"
	require.NoError(t, st.RecordQuery(ctx, killed))
	again, err := st.RequestQueryCancel(ctx, killed.ID)
	require.NoError(t, err)
	require.Equal(t, marked.CancelRequestedAt, again.CancelRequestedAt, "a finished query is not marked again")
	_, err = st.Query(ctx, uuid.New())
	require.ErrorIs(t, err, domain.ErrNotFound)
	_, err = st.RequestQueryCancel(ctx, uuid.New())
	require.ErrorIs(t, err, domain.ErrNotFound)

	rows, err := conn.Query(ctx, `SELECT id, outcome FROM queries`)
	require.NoError(t, err)
	outcomes := map[uuid.UUID]string{}
	for rows.Next() {
		var id uuid.UUID
		var o string
		require.NoError(t, rows.Scan(&id, &o))
		outcomes[id] = o
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[uuid.UUID]string{ok.ID: store.QueryOK, refused.ID: store.QueryRefused, killed.ID: store.QueryCancelled}, outcomes)

	requirePages(t, st, p.KeyID, killed.ID, refused.ID, ok.ID, refused.StartedAt)
}

// requirePages checks pages of the history of key's three queries: killed
// (cancelled), refused (started at refusedAt) and ok, newest first.
func requirePages(t *testing.T, st *store.Store, key int64, killed, refused, ok uuid.UUID, refusedAt time.Time) {
	t.Helper()
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		f    store.QueryFilter
		want []uuid.UUID
	}{
		{"all", store.QueryFilter{Limit: 10}, []uuid.UUID{killed, refused, ok}},
		{"first page", store.QueryFilter{Limit: 2}, []uuid.UUID{killed, refused}},
		{"after a cursor", store.QueryFilter{Limit: 2, After: &store.QueryCursor{StartedAt: refusedAt, ID: refused}},
			[]uuid.UUID{ok}},
		{"by outcome", store.QueryFilter{Limit: 10, Outcome: store.QueryCancelled}, []uuid.UUID{killed}},
		{"by key", store.QueryFilter{Limit: 10, KeyID: key}, []uuid.UUID{killed, refused, ok}},
		{"another key", store.QueryFilter{Limit: 10, KeyID: key + 1000}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := st.Queries(ctx, tc.f)
			require.NoError(t, err)
			ids := make([]uuid.UUID, 0, len(list))
			for _, q := range list {
				ids = append(ids, q.ID)
			}
			if tc.want == nil {
				tc.want = []uuid.UUID{}
			}
			require.Equal(t, tc.want, ids)
		})
	}
}
