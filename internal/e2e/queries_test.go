package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/store"
)

// longQuery runs for many seconds on the hub's ClickHouse however fast its
// client reads: each of its million rows (see ensureVesicles) builds and
// counts two arrays of up to 1,500 numbers (at most 100 million numbers a
// block of 65,536 rows, ClickHouse's bound for range).
const longQuery = `{"sql": "SELECT cid, arrayUniq(range(toUInt32(ifNull(voxel_volume, 0)) % 1500)) AS u, ` +
	`arrayUniq(range(toUInt32(ifNull(centroid_x, 0)) % 1500)) AS v FROM vesicle"}`

// queryAs runs a query with key and reads its whole JSON-lines answer.
func queryAs(t *testing.T, key, body string) queryResult {
	t.Helper()
	resp := startQueryAs(t, key, body)
	defer func() { _ = resp.Body.Close() }()
	out := queryResult{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out.err))
		return out
	}
	out.rows, out.meta = readQueryLines(t, resp.Body)
	return out
}

func startQueryAs(t *testing.T, key, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, fed.APIURL+"/v1/query", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

// readQueryLines decodes JSON lines: the rows, then the _meta line.
func readQueryLines(t *testing.T, r io.Reader) ([]map[string]any, api.QueryMeta) {
	t.Helper()
	rows, meta, err := decodeQueryLines(r)
	require.NoError(t, err)
	return rows, meta
}

// decodeQueryLines is readQueryLines for another goroutine than the test's.
func decodeQueryLines(r io.Reader) ([]map[string]any, api.QueryMeta, error) {
	var (
		rows []map[string]any
		meta api.QueryMeta
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, meta, fmt.Errorf("decode line: %w", err)
		}
		if m, ok := line["_meta"]; ok {
			if err := json.Unmarshal(m, &meta); err != nil {
				return nil, meta, fmt.Errorf("decode _meta: %w", err)
			}
			continue
		}
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return nil, meta, fmt.Errorf("decode row: %w", err)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, meta, fmt.Errorf("read answer: %w", err)
	}
	return rows, meta, nil
}

// queryRow is GET /v1/queries/{id} with key.
func queryRow(t *testing.T, key, id string) (int, store.Query) {
	t.Helper()
	status, raw := keyDo(t, key, http.MethodGet, "/v1/queries/"+id, "")
	var q store.Query
	if status == http.StatusOK {
		require.NoError(t, json.Unmarshal(raw, &q), string(raw))
	}
	return status, q
}

// waitQueryEnd polls the query's row until it is no longer running.
func waitQueryEnd(t *testing.T, key, id string) store.Query {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var q store.Query
	require.NoError(t, pollUntil(ctx, func() error {
		var status int
		status, q = queryRow(t, key, id)
		if status != http.StatusOK || q.Outcome == store.QueryRunning {
			return fmt.Errorf("query %s: status %d, outcome %q", id, status, q.Outcome)
		}
		return nil
	}))
	return q
}

// listQueryIDs is GET /v1/queries with key and params: the IDs and the
// next link.
func listQueryIDs(t *testing.T, key, params string) ([]string, []store.Query, string) {
	t.Helper()
	status, raw := keyDo(t, key, http.MethodGet, "/v1/queries"+params, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var list api.QueryList
	require.NoError(t, json.Unmarshal(raw, &list))
	ids := make([]string, 0, len(list.Queries))
	for _, q := range list.Queries {
		ids = append(ids, q.ID.String())
	}
	return ids, list.Queries, list.Next
}

// TestQueryHistory: every query gets an ID and a row that says who ran it,
// on which nodes, how many rows it returned and how it ended; a key sees its
// own rows, an admin every row.
func TestQueryHistory(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	reader := newKey(t, "qhist-reader", store.RoleReader)
	other := newKey(t, "qhist-other", store.RoleReader)

	sql := "SELECT cid, neuron_type FROM neuron"
	res := queryAs(t, reader.key, `{"sql": "`+sql+`"}`)
	require.Equal(t, http.StatusOK, res.status, "%+v", res.err)
	id := res.header.Get(api.HeaderQueryID)
	_, err := uuid.Parse(id)
	require.NoError(t, err, "the query ID is a UUID: %q", id)
	require.Equal(t, id, res.meta.QueryID, "the header and _meta name the same query")
	want := nodeCount(t, "lab-a", "neuron") + nodeCount(t, "lab-b", "neuron")
	require.Len(t, res.rows, int(want), "the oracle: each node's own count")

	q := waitQueryEnd(t, reader.key, id)
	require.Equal(t, store.QueryOK, q.Outcome, "%+v", q)
	require.Equal(t, int64(len(res.rows)), q.Rows)
	require.ElementsMatch(t, []string{"lab-a", "lab-b"}, q.Nodes)
	require.Equal(t, sql, q.SQL)
	require.Equal(t, reader.id, q.KeyID)
	require.Equal(t, reader.name, q.KeyName)
	require.Equal(t, store.RoleReader, q.Role)
	require.Positive(t, q.BytesRead, "ClickHouse's progress says what it read")
	require.NotNil(t, q.FinishedAt)
	conn := pg(t)
	require.Equal(t, 1, countRows(t, conn, `SELECT count(*) FROM queries WHERE id = $1 AND outcome = 'ok' AND rows = $2
		AND nodes @> ARRAY['lab-a', 'lab-b'] AND key_id = $3`, id, len(res.rows), reader.id))

	// Another reader's refused query: recorded, and its own.
	refused := queryAs(t, other.key, `{"sql": "DROP TABLE neuron"}`)
	require.Equal(t, http.StatusBadRequest, refused.status)
	otherID := refused.header.Get(api.HeaderQueryID)
	rq := waitQueryEnd(t, other.key, otherID)
	require.Equal(t, store.QueryRefused, rq.Outcome)
	require.Contains(t, rq.Error, "only SELECT")

	mine, rows, _ := listQueryIDs(t, reader.key, "?limit=500")
	require.Contains(t, mine, id)
	require.NotContains(t, mine, otherID, "a reader sees only its own queries")
	for _, r := range rows {
		require.Equal(t, reader.id, r.KeyID)
	}
	all, _, _ := listQueryIDs(t, fed.APIKey, "?limit=500")
	require.Subset(t, all, []string{id, otherID}, "an admin sees every key's queries")
	refusedIDs, rows, _ := listQueryIDs(t, fed.APIKey, "?outcome=refused&limit=500")
	require.Contains(t, refusedIDs, otherID)
	require.NotContains(t, refusedIDs, id)
	for _, r := range rows {
		require.Equal(t, store.QueryRefused, r.Outcome)
	}
	// Paged one by one, an admin's list is the whole list.
	var paged []string
	params := "?limit=1"
	for range 2 {
		ids, _, next := listQueryIDs(t, fed.APIKey, params)
		require.Len(t, ids, 1)
		require.NotEmpty(t, next)
		paged = append(paged, ids...)
		params = next[strings.Index(next, "?"):]
	}
	require.Equal(t, all[:2], paged)

	status, _ := queryRow(t, reader.key, otherID)
	require.Equal(t, http.StatusNotFound, status, "another key's query is not found")
	status, _ = queryRow(t, fed.APIKey, otherID)
	require.Equal(t, http.StatusOK, status, "an admin sees it")
	for _, bad := range []string{"/v1/queries/not-a-uuid", "/v1/queries?outcome=nope", "/v1/queries?cursor=%21%21", "/v1/queries?limit=0"} {
		status, raw := keyDo(t, reader.key, http.MethodGet, bad, "")
		requireError(t, http.StatusBadRequest, status, raw, "bad_request", bad)
	}
}

// ensureVesicles makes lab-a hold at least n synthetic vesicles.
func ensureVesicles(t *testing.T, n int) {
	t.Helper()
	var have uint64
	require.NoError(t, nodeConn(t, "lab-a").QueryRow(t.Context(),
		"SELECT count() FROM vesicle WHERE dataset_id = toUUID('"+bigDataset+"')").Scan(&have))
	if int(have) < n {
		addVesicles(t, n-int(have))
	}
}

// hubConn is the hub's ClickHouse as its default user.
func hubConn(t *testing.T) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(t.Context(), config.ClickHouse{Addr: fed.Stack.Hub.Addr(), User: "default", Database: "syndb"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// processesOf counts the queries of id on a ClickHouse: the query itself
// and the remote() parts it started.
func processesOf(t *testing.T, conn driver.Conn, id string) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, conn.QueryRow(t.Context(),
		"SELECT count() FROM system.processes WHERE query_id = ? OR initial_query_id = ?", id, id).Scan(&n))
	return n
}
