package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/store"
)

// queryBody is the JSON body of /v1/query for sql (and nodes).
func queryBody(t testing.TB, sql string, nodes ...string) string {
	t.Helper()
	raw, err := json.Marshal(api.QueryRequest{SQL: sql, Nodes: nodes})
	require.NoError(t, err)
	return string(raw)
}

// TestSecQueryInjectionRefused (issue 11, finding 1): a backtick name that
// ends in a backslash no longer turns the rest of the text into the
// reader's own SQL. The trick as filed read lab-b's database list; now it,
// and its variants that read system.processes, call url() or set
// max_execution_time, are a 400 and nothing of lab-b comes back.
func TestSecQueryInjectionRefused(t *testing.T) {
	// Both nodes routable: a refusal here is the parser's, not routing's.
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	labB := fed.Stack.Nodes["lab-b"].Addr()
	reader := newKey(t, "sec-sql-reader", store.RoleReader)
	// The oracle: lab-b's databases, read straight from its ClickHouse.
	rows, err := nodeConn(t, "lab-b").Query(t.Context(), "SELECT name FROM system.databases")
	require.NoError(t, err)
	var dbs []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		dbs = append(dbs, n)
	}
	require.NoError(t, rows.Close())
	require.Contains(t, dbs, "syndb")

	for _, sql := range []string{
		"SELECT count() AS `x\\`, 1 AS ` , groupArray(name) FROM remote('" + labB + "', system.databases) -- ` FROM neuron",
		"SELECT count() AS `x\\`, 1 AS ` , groupArray(query) FROM remote('" + labB + "', system.processes) -- ` FROM neuron",
		"SELECT count() AS `x\\`, 1 AS ` , 1 FROM url('http://127.0.0.1:1/', 'CSV', 'x String') -- ` FROM neuron",
		"SELECT count() AS `x\\`, 1 AS ` FROM neuron SETTINGS max_execution_time = 0 -- ` FROM neuron",
	} {
		// As filed: with a reader key.
		status, raw := keyDo(t, reader.key, http.MethodPost, "/v1/query", queryBody(t, sql))
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", sql, raw)
		var body api.ErrorBody
		require.NoError(t, json.Unmarshal(raw, &body), "one JSON error, no rows: %s", raw)
		require.Equal(t, "bad_request", body.Error.Code)
		for _, db := range dbs {
			if !strings.Contains(sql, db) {
				require.NotContains(t, string(raw), db, "lab-b's database %s leaked", db)
			}
		}
	}
}

// TestSecQueryPlaceholderRefused (finding 9): a `?` placeholder is the
// parser's 400, not blamed on the nodes.
func TestSecQueryPlaceholderRefused(t *testing.T) {
	// Both nodes routable: a refusal here is the parser's, not routing's.
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	res := runQuery(t, queryBody(t, "SELECT voxel_volume = ? FROM neuron"))
	require.Equal(t, http.StatusBadRequest, res.status, "%+v", res.err)
	require.Contains(t, res.err.Error.Message, "placeholders")
	require.NotContains(t, res.err.Error.Message, "unreachable")
}

// TestSecQueryDeepNestingRefused (finding 2): 1,000 nested CASE (about
// 21 KB) is a 400 from the API's parser and never reaches the hub's
// ClickHouse, which stays up.
func TestSecQueryDeepNestingRefused(t *testing.T) {
	// Both nodes routable: a refusal here is the parser's, not routing's.
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	hub, err := clickhouse.Open(t.Context(), config.ClickHouse{Addr: fed.Stack.Hub.Addr(), User: "default", Database: "syndb"})
	require.NoError(t, err)
	defer func() { _ = hub.Close() }()
	var before uint32
	require.NoError(t, hub.QueryRow(t.Context(), "SELECT uptime()").Scan(&before))

	sql := "SELECT " + strings.Repeat("CASE WHEN cid = 1 THEN ", 1000) + "1" + strings.Repeat(" ELSE 0 END", 1000) + " AS x FROM neuron"
	require.Greater(t, len(sql), 20_000)
	res := runQuery(t, queryBody(t, sql))
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Contains(t, res.err.Error.Message, "nest more than")

	status, raw := apiDo(t, http.MethodGet, "/readyz", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var one uint8
	require.NoError(t, hub.QueryRow(t.Context(), "SELECT 1").Scan(&one))
	require.Equal(t, uint8(1), one)
	// The same server answers: it did not die and come back.
	var after uint32
	require.NoError(t, hub.QueryRow(t.Context(), "SELECT uptime()").Scan(&after))
	require.GreaterOrEqual(t, after, before)
}

// secDataset holds lab-a vesicle rows this file adds and removes.
const secDataset = "00000000-0000-4000-8000-0000000005ec"

// TestSecQueryFailureIsAnError (finding 2, second half): a query that
// fails before its first row is an error status with a JSON error body, and
// one that fails after rows were sent ends with an error line and the
// error trailer, in JSON lines and CSV.
func TestSecQueryFailureIsAnError(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	// Division by zero in the first block: nothing was sent, so a 400.
	res := runQuery(t, queryBody(t, "SELECT intDiv(1, toInt64(voxel_volume) * 0) AS x FROM neuron"))
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, "bad_request", res.err.Error.Code)
	require.Contains(t, strings.ToLower(res.err.Error.Message), "division by zero")

	// Division by zero at the last of 300,000 rows: rows went out first.
	const n = 300_000
	conn := nodeConn(t, "lab-a")
	require.NoError(t, conn.Exec(t.Context(), fmt.Sprintf(`INSERT INTO vesicle (dataset_id, cid, voxel_volume, centroid_x, neurotransmitter)
		SELECT toUUID('%s'), toUUID('00000000-0000-4000-8000-000000000001'), toFloat64(number), 0, 'gaba'
		FROM system.numbers LIMIT %d`, secDataset, n)))
	t.Cleanup(func() {
		c, err := clickhouse.Open(context.Background(), config.ClickHouse{Addr: fed.Stack.Nodes["lab-a"].Addr(), User: "default", Database: "syndb"})
		require.NoError(t, err)
		defer func() { _ = c.Close() }()
		require.NoError(t, c.Exec(context.Background(), "ALTER TABLE vesicle DELETE WHERE dataset_id = toUUID('"+secDataset+"')"))
	})
	sql := fmt.Sprintf("SELECT voxel_volume, intDiv(1, toInt64(voxel_volume) - %d) AS x FROM vesicle WHERE dataset_id = toUUID('%s')", n-1, secDataset)

	resp := postQuery(t, queryBody(t, sql), "")
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode, "rows were sent before the failure")
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var rowsSeen int
	var last string
	for sc.Scan() {
		last = sc.Text()
		if !strings.HasPrefix(last, `{"_meta"`) {
			rowsSeen++
		}
	}
	require.NoError(t, sc.Err())
	require.Positive(t, rowsSeen)
	require.Less(t, rowsSeen, n)
	var end struct {
		Meta  api.QueryMeta    `json:"_meta"`
		Error *api.ErrorDetail `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(last), &end))
	require.NotNil(t, end.Error, "the last line is an error: %s", last)
	require.Contains(t, strings.ToLower(end.Error.Message), "division by zero")
	require.Equal(t, end.Error.Message, end.Meta.Error)
	require.NotEmpty(t, resp.Trailer.Get(api.TrailerError))

	// CSV: the trailer says it failed.
	resp = postQuery(t, queryBody(t, sql), "text/csv")
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, err := io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	require.Contains(t, strings.ToLower(resp.Trailer.Get(api.TrailerError)), "division by zero")
}

func postQuery(t testing.TB, body, accept string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, fed.APIURL+"/v1/query", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+fed.APIKey)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

// excludedAtQuery returns the exclusion of node as unreachable_at_query.
func excludedAtQuery(meta api.QueryMeta, node string) bool {
	for _, e := range meta.Excluded {
		if e.Name == node && e.Reason == api.ReasonUnreachableNow {
			return true
		}
	}
	return false
}

// TestSecQueryDeadAddressExcluded (finding 5, second half): a node whose
// registered ClickHouse address has nothing listening is excluded as
// unreachable_at_query and the query answers without it, whatever the text
// of ClickHouse's error.
func TestSecQueryDeadAddressExcluded(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	const name = "sec-dead"
	dead, err := devstack.FreePort()
	require.NoError(t, err)
	// Its agent reaches its own warehouse, but registers an address where
	// nothing listens for the hub.
	deadAddr := fmt.Sprintf("127.0.0.1:%d", dead)
	startExtraNode(t, name, "syndb_sec_dead", map[string]string{"SYNDB_CLICKHOUSE_PUBLIC_ADDR": deadAddr,
		// On the libp2p data plane the hub's connections reach the
		// warehouse through the agent, at its gateway address.
		"SYNDB_CLICKHOUSE_GATEWAY_ADDR": deadAddr})
	waitHealth(t, name, health.Healthy, 2*time.Minute)

	want := nodeCount(t, "lab-a", "neuron") + nodeCount(t, "lab-b", "neuron")
	res := runQuery(t, queryBody(t, "SELECT count() AS n FROM neuron"))
	require.Equal(t, http.StatusOK, res.status, "%+v", res.err)
	require.True(t, excludedAtQuery(res.meta, name), "%+v", res.meta.Excluded)
	require.ElementsMatch(t, []string{"lab-a", "lab-b"}, res.meta.Included)
	require.InDelta(t, float64(want), res.rows[0]["n"], 0)

	// The exclusion's keys are snake_case, in the query's meta line and in
	// the routing plan alike.
	resp := postQuery(t, queryBody(t, "SELECT count() AS n FROM neuron"), "")
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Contains(t, string(raw), `{"name":"`+name+`","reason":"unreachable_at_query","detail":"`)
	status, plan := apiDo(t, http.MethodGet, "/v1/federation/routing?nodes=lab-zz", "")
	require.Equal(t, http.StatusOK, status, string(plan))
	require.Contains(t, string(plan), `{"name":"lab-zz","reason":"not_registered","detail":"`)

	// Only the node is blamed: asked for alone, it is the 503 of a query
	// no node can answer, and the reason names it.
	res = runQuery(t, queryBody(t, "SELECT count() AS n FROM neuron", name))
	require.Equal(t, http.StatusServiceUnavailable, res.status)
	require.Contains(t, res.err.Error.Message, name+" ("+string(api.ReasonUnreachableNow)+")")
}

// stallClickHouse stops node's ClickHouse with SIGSTOP (its sockets stay
// open, it answers nothing) and resumes it when the test ends.
func stallClickHouse(t *testing.T, node string) {
	t.Helper()
	pid := fed.Stack.Nodes[node].Process().Pid()
	require.NoError(t, syscall.Kill(-pid, syscall.SIGSTOP))
	t.Cleanup(func() {
		require.NoError(t, syscall.Kill(-pid, syscall.SIGCONT))
		// Back to Healthy before the next test (t.Context() has ended).
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, pollUntil(ctx, func() error {
			status, raw := apiDoCtx(ctx, t, http.MethodGet, "/v1/federation/health", "")
			var rep api.HealthReport
			if err := json.Unmarshal(raw, &rep); err != nil || status != http.StatusOK {
				return fmt.Errorf("health report %d: %s", status, raw)
			}
			for _, n := range rep.Nodes {
				if n.Name == node && n.State != string(health.Healthy) {
					return fmt.Errorf("%s is %s", node, n.State)
				}
			}
			return nil
		}))
	})
}

// timedQuery is one query's answer and how long it took.
type timedQuery struct {
	status int
	meta   api.QueryMeta
	n      float64
	took   time.Duration
	err    error
}

// queryCount runs SELECT count() AS n FROM neuron on nodes (all when none)
// without failing the test, for use from goroutines.
func queryCount(ctx context.Context, body string) timedQuery {
	start := time.Now()
	out := timedQuery{}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fed.APIURL+"/v1/query", strings.NewReader(body))
	if err != nil {
		out.err = err
		return out
	}
	req.Header.Set("Authorization", "Bearer "+fed.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		out.err = err
		return out
	}
	defer func() { _ = resp.Body.Close() }()
	out.status = resp.StatusCode
	raw, err := io.ReadAll(resp.Body)
	out.took = time.Since(start)
	if err != nil || resp.StatusCode != http.StatusOK {
		out.err = fmt.Errorf("status %d: %s (%v)", resp.StatusCode, raw, err)
		return out
	}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			out.err = err
			return out
		}
		if v, ok := m["_meta"]; ok {
			out.err = json.Unmarshal(v, &out.meta)
			continue
		}
		out.err = json.Unmarshal(m["n"], &out.n)
	}
	return out
}

// TestSecQueryStalledNodeCostsItsShare (finding 7): with lab-b's ClickHouse
// stalled, 8 queries over both nodes each answer within 15 s with lab-b
// excluded as unreachable_at_query and lab-a's count, and a lab-a-only
// query started meanwhile does not wait on them.
func TestSecQueryStalledNodeCostsItsShare(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	wantA := float64(nodeCount(t, "lab-a", "neuron"))
	stallClickHouse(t, "lab-b")

	all := queryBody(t, "SELECT count() AS n FROM neuron")
	results := make([]timedQuery, 8)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = queryCount(t.Context(), all) })
	}
	onlyA := queryCount(t.Context(), queryBody(t, "SELECT count() AS n FROM neuron", "lab-a"))
	wg.Wait()

	require.NoError(t, onlyA.err)
	require.Equal(t, http.StatusOK, onlyA.status)
	require.InDelta(t, wantA, onlyA.n, 0)
	require.Less(t, onlyA.took, 5*time.Second, "the lab-a query waited on the stalled node's")
	for i, r := range results {
		require.NoError(t, r.err, "query %d", i)
		require.Less(t, r.took, 15*time.Second, "query %d", i)
		require.True(t, excludedAtQuery(r.meta, "lab-b"), "query %d: %+v", i, r.meta.Excluded)
		require.Equal(t, []string{"lab-a"}, r.meta.Included)
		require.InDelta(t, wantA, r.n, 0, "query %d", i)
		t.Logf("query %d answered in %s without lab-b", i, r.took.Round(time.Millisecond))
	}
	t.Logf("lab-a-only query answered in %s", onlyA.took.Round(time.Millisecond))
}

// TestSecStalledWarehouseDegraded (finding 7): a stalled warehouse shows
// in the health report: the node's ping checks its ClickHouse within 2 s,
// so one sweep marks it Degraded with the reason.
func TestSecStalledWarehouseDegraded(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	stallClickHouse(t, "lab-b")
	start := time.Now()
	status, raw := apiDo(t, http.MethodPost, "/v1/federation/health/sweep", "")
	require.Equal(t, http.StatusAccepted, status, string(raw))
	h := waitHealth(t, "lab-b", health.Degraded, 10*time.Second)
	require.Contains(t, h.Reason, "clickhouse")
	require.Equal(t, string(health.Healthy), healthOf(t, "lab-a").State)
	t.Logf("lab-b Degraded %s after the stall: %s", time.Since(start).Round(time.Millisecond), h.Reason)
}

// TestSecQueryMemoryHungryRefused: a query that needs far more memory than
// the query user's profile allows is an error answer, not a 200 with the
// error in _meta, and the hub's ClickHouse stays up.
func TestSecQueryMemoryHungryRefused(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	rows := nodeCount(t, "lab-a", "neuron") + nodeCount(t, "lab-b", "neuron")
	// Each row becomes a string of six printed ranges of 400,000 numbers
	// (about 16 MB), all kept by groupArray: well past the profile's 1 GB.
	const perRow = 6 * 2_700_000
	require.Greater(t, rows*perRow, uint64(2_000_000_000), "too few rows (%d) to need more than the memory cap", rows)
	one := "toString(range(400000))"
	sql := "SELECT length(groupArray(concat(" + strings.Repeat(one+", ", 5) + one + "))) AS n FROM neuron"

	res := runQuery(t, queryBody(t, sql))
	require.Equal(t, http.StatusBadRequest, res.status, "%+v", res.err)
	require.Contains(t, strings.ToLower(res.err.Error.Message), "memory")

	status, raw := apiDo(t, http.MethodGet, "/readyz", "")
	require.Equal(t, http.StatusOK, status, string(raw))
}
