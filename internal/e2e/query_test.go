package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/health"
)

// queryResult is a decoded JSON-lines answer of /v1/query.
type queryResult struct {
	status int
	header http.Header
	rows   []map[string]any
	meta   api.QueryMeta
	err    api.ErrorBody
}

func runQuery(t *testing.T, body string) queryResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, fed.APIURL+"/v1/query", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+fed.APIKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	out := queryResult{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out.err))
		return out
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line))
		if m, ok := line["_meta"]; ok {
			require.NoError(t, json.Unmarshal(m, &out.meta))
			continue
		}
		var row map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &row))
		out.rows = append(out.rows, row)
	}
	require.NoError(t, sc.Err())
	return out
}

func nodeCount(t *testing.T, node, table string) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, nodeConn(t, node).QueryRow(t.Context(), "SELECT count() FROM "+table).Scan(&n))
	return n
}

// TestFederatedQuery: the same questions through /v1/query and straight to
// each node's ClickHouse give the same answers.
func TestFederatedQuery(t *testing.T) {
	// Nodes are routed to once the health monitor has seen them answer.
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	// An aggregate over both nodes is the sum of theirs.
	res := runQuery(t, `{"sql": "SELECT count() AS n FROM neuron"}`)
	require.Equal(t, http.StatusOK, res.status, "%+v", res.err)
	want := nodeCount(t, "lab-a", "neuron") + nodeCount(t, "lab-b", "neuron")
	require.Positive(t, want)
	require.Len(t, res.rows, 1)
	require.InDelta(t, float64(want), res.rows[0]["n"], 0)
	require.ElementsMatch(t, []string{"lab-a", "lab-b"}, res.meta.Included)
	require.ElementsMatch(t, []string{"lab-a", "lab-b"}, strings.Split(res.header.Get(api.HeaderIncluded), ","))

	// Per node, grouped by the node column.
	res = runQuery(t, `{"sql": "SELECT _node, count() AS n FROM neuron GROUP BY _node ORDER BY _node"}`)
	require.Equal(t, http.StatusOK, res.status, "%+v", res.err)
	require.Len(t, res.rows, 2)
	for _, r := range res.rows {
		require.InDelta(t, float64(nodeCount(t, r["_node"].(string), "neuron")), r["n"], 0)
	}

	// Plain rows: each says where it came from, and the set is each node's.
	res = runQuery(t, `{"sql": "SELECT cid, voxel_volume, neuron_type FROM neuron ORDER BY cid"}`)
	require.Equal(t, http.StatusOK, res.status, "%+v", res.err)
	require.Len(t, res.rows, int(want))
	got := map[string][]string{}
	for _, r := range res.rows {
		got[r["_node"].(string)] = append(got[r["_node"].(string)], r["cid"].(string))
	}
	for _, node := range []string{"lab-a", "lab-b"} {
		rows, err := nodeConn(t, node).Query(t.Context(), "SELECT toString(cid) FROM neuron ORDER BY cid")
		require.NoError(t, err)
		var direct []string
		for rows.Next() {
			var cid string
			require.NoError(t, rows.Scan(&cid))
			direct = append(direct, cid)
		}
		require.NoError(t, rows.Close())
		slices.Sort(got[node])
		slices.Sort(direct)
		require.Equal(t, direct, got[node], "rows of %s", node)
	}
	require.Equal(t, int64(want), res.meta.Rows)

	// Restricted to one node.
	res = runQuery(t, `{"sql": "SELECT count() AS n FROM neuron", "nodes": ["lab-b"]}`)
	require.Equal(t, http.StatusOK, res.status)
	require.InDelta(t, float64(nodeCount(t, "lab-b", "neuron")), res.rows[0]["n"], 0)
	require.Equal(t, []string{"lab-b"}, res.meta.Included)

	// CSV: a header, then the rows.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, fed.APIURL+"/v1/query",
		strings.NewReader(`{"sql": "SELECT cid, neuron_type FROM neuron", "format": "csv"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+fed.APIKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	_ = resp.Body.Close()
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"_node", "cid", "neuron_type"}, recs[0])
	require.Len(t, recs, int(want)+1)
	require.Equal(t, fmt.Sprint(want), resp.Trailer.Get(api.TrailerRows))

	// Arrow IPC stream, chosen by the Accept header.
	req, err = http.NewRequestWithContext(t.Context(), http.MethodPost, fed.APIURL+"/v1/query",
		strings.NewReader(`{"sql": "SELECT cid, voxel_volume FROM neuron"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+fed.APIKey)
	req.Header.Set("Accept", "application/vnd.apache.arrow.stream")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, "application/vnd.apache.arrow.stream", resp.Header.Get("Content-Type"))
	rd, err := ipc.NewReader(resp.Body)
	require.NoError(t, err)
	defer rd.Release()
	require.Equal(t, []string{"_node", "cid", "voxel_volume"}, fieldNames(rd.Schema().Fields()))
	var arrowRows int64
	for rd.Next() {
		arrowRows += rd.RecordBatch().NumRows()
	}
	require.NoError(t, rd.Err())
	require.Equal(t, int64(want), arrowRows)
}

func TestFederatedQueryRefusals(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"sql": "DROP TABLE neuron"}`, "only SELECT"},
		{`{"sql": "INSERT INTO neuron (cid) VALUES ('x')"}`, "only SELECT"},
		{`{"sql": "ALTER TABLE neuron DELETE WHERE 1"}`, "only SELECT"},
		{`{"sql": "SELECT cid FROM neuron; DROP TABLE neuron"}`, "one statement"},
		{`{"sql": "SELECT * FROM system.users"}`, "system tables"},
		{`{"sql": "SELECT name FROM system.tables"}`, "system tables"},
		{`{"sql": "SELECT cid FROM default.neuron"}`, "without a database"},
		{`{"sql": "SELECT cid FROM secrets"}`, "unknown table"},
		{`{"sql": "SELECT nope FROM neuron"}`, "unknown column"},
		{`{"sql": "SELECT * FROM remote('127.0.0.1:9000', system.one)"}`, "table functions"},
		{`{"sql": "SELECT * FROM url('http://127.0.0.1/', CSV, 'a String')"}`, "table functions"},
		{`{"sql": "SELECT * FROM numbers(1000000000)"}`, "table functions"},
		{`{"sql": "SELECT file('/etc/passwd') FROM neuron"}`, "not allowed"},
		{`{"sql": "SELECT sleep(3) FROM neuron"}`, "not allowed"},
		{`{"sql": "SELECT dictGet('d', 'a', toUInt64(1)) FROM neuron"}`, "not allowed"},
		{`{"sql": "SELECT currentUser() FROM neuron"}`, "not allowed"},
		{`{"sql": "SELECT cid FROM neuron INTO OUTFILE '/tmp/x'"}`, "INTO OUTFILE"},
		{`{"sql": "SELECT cid FROM neuron FORMAT TabSeparated"}`, "FORMAT"},
		{`{"sql": "SELECT cid FROM neuron SETTINGS readonly = 0"}`, "not allowed"},
		{`{"sql": "SELECT cid FROM neuron SETTINGS max_memory_usage = 0"}`, "not allowed"},
		{`{"sql": "SELECT cid FROM neuron SETTINGS max_threads = 512"}`, "out of range"},
		{`{"sql": "SELECT countState() FROM neuron"}`, "-State and -Merge"},
		{`{"sql": "SELECT sum(count()) FROM neuron"}`, "inside another aggregate"},
		{`{"sql": "SELECT cid, count() FROM neuron GROUP BY dataset_id"}`, "GROUP BY or inside an aggregate"},
		{`{"sql": "SELECT cid FROM neuron WHERE cid IN (SELECT cid FROM system.one)"}`, "system tables"},
		{`{"sql": "SELECT cid FROM neuron, synapse"}`, "comma joins"},
		{`{"sql": "SELECT cid FROM neuron FINAL"}`, "FINAL"},
		{`{"sql": "SELECT cid FROM neuron WHERE cid = ?"}`, "placeholders"},
		{`{"sql": "SELECT cid FROM neuron /* unterminated"}`, "unterminated comment"},
		{`{"sql": "SELECT cid AS _syndb_c1 FROM neuron"}`, "cannot be used as a name"},
		{`{"sql": "SELEC cid FROM neuron"}`, "cannot parse"},
		{`{"sql": "SELECT cid FROM neuron", "format": "xml"}`, "format"},
		{`{"sql": "SELECT cid FROM neuron", "scope": "galaxy"}`, "scope"},
		{`{"sql": "SELECT cid FROM neuron", "partial": "maybe"}`, "partial"},
		{`{"sql": "SELECT cid FROM neuron", "nodes": ["lab-zz"]}`, "no node can answer"},
		{`{"sql": 42}`, "invalid JSON"},
	} {
		res := runQuery(t, tc.body)
		require.Contains(t, []int{http.StatusBadRequest, http.StatusServiceUnavailable}, res.status, tc.body)
		require.Contains(t, res.err.Error.Message, tc.want, tc.body)
		require.NotContains(t, res.err.Error.Message, "remote(", "no compiled query leaks")
	}
}

// TestFederatedQueryNodeDownMidway: a node whose warehouse stops after the
// last health sweep is reported excluded, and the answer is the other's.
func TestFederatedQueryNodeDownMidway(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	wantA := nodeCount(t, "lab-a", "neuron")
	require.NoError(t, fed.Stack.Nodes["lab-b"].Stop(t.Context()))
	t.Cleanup(func() { require.NoError(t, fed.Stack.Nodes["lab-b"].Start(context.Background())) })
	res := runQuery(t, `{"sql": "SELECT count() AS n FROM neuron"}`)
	require.Equal(t, http.StatusOK, res.status, "%+v", res.err)
	require.Equal(t, []string{"lab-a"}, res.meta.Included)
	found := false
	for _, e := range res.meta.Excluded {
		if e.Name == "lab-b" {
			found = true
		}
	}
	require.True(t, found, "lab-b is reported excluded, not silently missing: %+v", res.meta.Excluded)
	require.Contains(t, res.header.Get(api.HeaderExcluded), "lab-b")
	require.InDelta(t, float64(wantA), res.rows[0]["n"], 0)
}

// bigDataset is the dataset of the synthetic rows added to lab-a's vesicle
// table for streaming tests and benchmarks (other tests do not read it).
const bigDataset = "00000000-0000-4000-8000-00000000b16d"

// addVesicles adds n synthetic rows to lab-a's vesicle table.
func addVesicles(t testing.TB, n int) {
	t.Helper()
	conn, err := clickhouse.Open(t.Context(), config.ClickHouse{Addr: fed.Stack.Nodes["lab-a"].Addr(), User: "default", Database: "syndb"})
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	require.NoError(t, conn.Exec(t.Context(), fmt.Sprintf(`INSERT INTO vesicle (dataset_id, cid, voxel_volume, centroid_x, neurotransmitter)
		SELECT toUUID('%s'), toUUID('00000000-0000-4000-8000-000000000001'), toFloat64(number), toFloat64(number) / 3, 'glutamate'
		FROM system.numbers LIMIT %d`, bigDataset, n)))
}

// TestFederatedQueryClientGoneCancels: a client that goes away mid-stream
// cancels the query on the hub's ClickHouse.
func TestFederatedQueryClientGoneCancels(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	addVesicles(t, 3_000_000)
	hub, err := clickhouse.Open(t.Context(), config.ClickHouse{Addr: fed.Stack.Hub.Addr(), User: "default", Database: "syndb"})
	require.NoError(t, err)
	defer func() { _ = hub.Close() }()
	running := func() uint64 {
		var n uint64
		require.NoError(t, hub.QueryRow(t.Context(),
			"SELECT count() FROM system.processes WHERE query LIKE '%vesicle%' AND query NOT LIKE '%system.processes%'").Scan(&n))
		return n
	}

	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fed.APIURL+"/v1/query",
		strings.NewReader(`{"sql": "SELECT cid, voxel_volume, centroid_x FROM vesicle"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+fed.APIKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = io.ReadFull(resp.Body, make([]byte, 4096))
	require.NoError(t, err)
	require.Positive(t, running(), "the query runs while the client reads")

	cancel()
	_ = resp.Body.Close()
	pctx, pcancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer pcancel()
	require.NoError(t, pollUntil(pctx, func() error {
		if n := running(); n > 0 {
			return fmt.Errorf("%d queries still running", n)
		}
		return nil
	}), "the query goes on after its client left")
}

// TestHubFlight: a standard Flight client reads a federated query from the
// hub's Flight server: GetFlightInfo plans it, DoGet streams it.
func TestHubFlight(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	cl, err := flight.NewClientWithMiddleware(fed.Env["SYNDB_API_FLIGHT_ADDR"], nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer func() { _ = cl.Close() }()
	desc := &flight.FlightDescriptor{Type: flight.DescriptorCMD,
		Cmd: []byte(`{"sql": "SELECT cid, voxel_volume, neuron_type FROM neuron"}`)}

	_, err = cl.GetFlightInfo(t.Context(), desc)
	require.Equal(t, codes.Unauthenticated, status.Code(err), "no key, no query: %v", err)

	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+fed.APIKey)
	info, err := cl.GetFlightInfo(ctx, desc)
	require.NoError(t, err)
	require.Len(t, info.GetEndpoint(), 1)
	schema, err := flight.DeserializeSchema(info.GetSchema(), memory.DefaultAllocator)
	require.NoError(t, err)
	require.Equal(t, []string{"_node", "cid", "voxel_volume", "neuron_type"}, fieldNames(schema.Fields()))

	// A ticket is read only with the key that planned it, and only once.
	other := newKey(t, "flight-other", "reader")
	otherCtx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+other.key)
	stolen, err := cl.DoGet(otherCtx, info.GetEndpoint()[0].GetTicket())
	require.NoError(t, err)
	_, err = stolen.Recv()
	require.Equal(t, codes.PermissionDenied, status.Code(err), "another key's ticket: %v", err)

	stream, err := cl.DoGet(ctx, info.GetEndpoint()[0].GetTicket())
	require.NoError(t, err)
	rd, err := flight.NewRecordReader(stream)
	require.NoError(t, err)
	defer rd.Release()
	var n int64
	perNode := map[string]int64{}
	for rd.Next() {
		rec := rd.RecordBatch()
		nodes := rec.Column(0).(*array.String)
		for i := range int(rec.NumRows()) {
			perNode[nodes.Value(i)]++
		}
		n += rec.NumRows()
	}
	require.NoError(t, rd.Err())
	want := nodeCount(t, "lab-a", "neuron") + nodeCount(t, "lab-b", "neuron")
	require.Equal(t, int64(want), n)
	require.Equal(t, int64(nodeCount(t, "lab-a", "neuron")), perNode["lab-a"])

	replay, err := cl.DoGet(ctx, info.GetEndpoint()[0].GetTicket())
	require.NoError(t, err)
	_, err = replay.Recv()
	require.Equal(t, codes.NotFound, status.Code(err), "a used ticket is not read again: %v", err)

	_, err = cl.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte(`{"sql": "DROP TABLE neuron"}`)})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	bad, err := cl.DoGet(ctx, &flight.Ticket{Ticket: []byte("forged")})
	require.NoError(t, err)
	_, err = bad.Recv()
	require.Equal(t, codes.NotFound, status.Code(err))
}

func fieldNames(fs []arrow.Field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name
	}
	return out
}
