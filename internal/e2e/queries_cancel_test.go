package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/store"
)

// startAPIReplica runs a second `syndb api` in the test's process, on the
// federation's PostgreSQL, ClickHouse and Temporal, with env's settings
// over the federation's, and returns its URL.
func startAPIReplica(t testing.TB, env map[string]string) string {
	t.Helper()
	for k, v := range fed.Env {
		t.Setenv(k, v)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	addr := func() string {
		port, err := devstack.FreePort()
		require.NoError(t, err)
		return fmt.Sprintf("127.0.0.1:%d", port)
	}
	base := addr()
	t.Setenv("SYNDB_API_ADDR", base)
	t.Setenv("SYNDB_API_FLIGHT_ADDR", addr())
	t.Setenv("SYNDB_API_PUBLIC_URL", "http://"+base)
	cfg, err := config.Load[config.API]()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	rctx, rcancel := context.WithTimeout(t.Context(), time.Minute)
	defer rcancel()
	require.NoError(t, pollUntil(rctx, func() error {
		select {
		case err := <-done:
			return fmt.Errorf("the second API stopped: %w", err)
		default:
		}
		return apiReady(rctx, "http://"+base)
	}))
	return "http://" + base
}

// deleteAt is DELETE /v1/queries/{id} with key on the API at base.
func deleteAt(t *testing.T, base, key, id string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodDelete, base+"/v1/queries/"+id, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw
}

// TestQueryCancel: DELETE /v1/queries/{id}, on another API replica than the
// one serving the query, of a query that streams kills it on the hub's
// ClickHouse and its remote() parts on every node within 2 s (each
// ClickHouse asked directly), and its row says cancelled. Only its owner or
// an admin may; a query that is not running is a 409.
func TestQueryCancel(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	ensureVesicles(t, 3_000_000)
	replica := startAPIReplica(t, nil)
	reader := newKey(t, "qcancel-reader", store.RoleReader)
	other := newKey(t, "qcancel-other", store.RoleReader)
	// Each ClickHouse, asked directly: how many queries of id it runs.
	conns := map[string]driver.Conn{"hub": hubConn(t), "lab-a": nodeConn(t, "lab-a"), "lab-b": nodeConn(t, "lab-b")}
	running := func(name, id string) uint64 { return processesOf(t, conns[name], id) }

	resp := startQueryAs(t, reader.key, longQuery)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	id := resp.Header.Get(api.HeaderQueryID)
	require.NotEmpty(t, id)
	// The client reads all along: the query is long because of its work,
	// not because its answer is stuck.
	type answer struct {
		rows []map[string]any
		meta api.QueryMeta
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		rows, meta, err := decodeQueryLines(resp.Body)
		done <- answer{rows, meta, err}
	}()
	require.Positive(t, running("hub", id), "the hub's ClickHouse runs the query under its ID")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		if running("lab-a", id) == 0 {
			return fmt.Errorf("lab-a shows no part of %s", id)
		}
		return nil
	}), "lab-a's ClickHouse runs the remote() part with the query's ID as its initial_query_id")
	status, q := queryRow(t, reader.key, id)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, store.QueryRunning, q.Outcome)

	status, raw := deleteAt(t, replica, other.key, id)
	requireError(t, http.StatusNotFound, status, raw, "not_found", "another reader's query")
	require.Positive(t, running("hub", id), "another reader's DELETE changes nothing")

	status, raw = deleteAt(t, replica, reader.key, id)
	killed := time.Now()
	require.Equal(t, http.StatusAccepted, status, string(raw))
	require.NoError(t, json.Unmarshal(raw, &q))
	require.Equal(t, id, q.ID.String())
	require.NotNil(t, q.CancelRequestedAt)
	gone, stop := context.WithDeadline(t.Context(), killed.Add(2*time.Second))
	defer stop()
	require.NoError(t, pollUntil(gone, func() error {
		for name := range conns {
			if n := running(name, id); n > 0 {
				return fmt.Errorf("%s still runs %d queries of %s", name, n, id)
			}
		}
		return nil
	}), "the query and its remote() parts stop within 2 s")

	var ans answer
	select {
	case ans = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the answer never ended")
	}
	require.NoError(t, ans.err)
	require.Contains(t, ans.meta.Error, "cancelled", "the answer says it was cut short")
	row := waitQueryEnd(t, reader.key, id)
	require.Equal(t, store.QueryCancelled, row.Outcome, "%+v", row)
	require.Equal(t, int64(len(ans.rows)), row.Rows)
	conn := pg(t)
	require.Equal(t, 1, countRows(t, conn, `SELECT count(*) FROM queries WHERE id = $1 AND outcome = 'cancelled'
		AND cancel_requested_at IS NOT NULL`, id))

	requireCancelRefused(t, reader.key, id)
}

// requireCancelRefused: a DELETE of the cancelled query id, of a finished
// one, of an unknown one and of a malformed ID are refused.
func requireCancelRefused(t *testing.T, key, id string) {
	t.Helper()
	finished := queryAs(t, key, `{"sql": "SELECT count() AS n FROM neuron"}`)
	require.Equal(t, http.StatusOK, finished.status)
	fid := finished.header.Get(api.HeaderQueryID)
	waitQueryEnd(t, key, fid)
	for _, tc := range []struct {
		what, id string
		status   int
		code     string
	}{
		{"a cancelled query", id, http.StatusConflict, "conflict"},
		{"a finished query", fid, http.StatusConflict, "conflict"},
		{"an unknown query", uuid.NewString(), http.StatusNotFound, "not_found"},
		{"a query ID that is not a UUID", "not-a-uuid", http.StatusBadRequest, "bad_request"},
	} {
		status, raw := keyDo(t, key, http.MethodDelete, "/v1/queries/"+tc.id, "")
		requireError(t, tc.status, status, raw, tc.code, tc.what)
	}
}
