package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/flighttest"
	"github.com/syndb/federation/internal/ontology"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/schemas"
	"github.com/syndb/federation/workflows"
)

// roleKey is an API key made for a test, with its role and ID.
type roleKey struct {
	key, name, role string
	id              int64
}

// newKey creates an API key with role in its own account; the key is
// revoked when the test ends.
func newKey(t *testing.T, name, role string) roleKey {
	t.Helper()
	st, err := store.Open(t.Context(), fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(t, err)
	defer st.Close()
	name = fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	key, err := st.CreateAPIKey(t.Context(), "sec-"+name, name, role)
	require.NoError(t, err)
	p, err := st.Authenticate(t.Context(), key)
	require.NoError(t, err)
	require.Equal(t, role, p.Role)
	t.Cleanup(func() {
		st, err := store.Open(context.Background(), fed.Env["SYNDB_POSTGRES_DSN"])
		require.NoError(t, err)
		defer st.Close()
		_, err = st.RevokeAPIKey(context.Background(), p.KeyID)
		require.NoError(t, err)
	})
	return roleKey{key: key, name: name, role: role, id: p.KeyID}
}

// keyDo calls the federation's API with key (none when empty).
func keyDo(t *testing.T, key, method, path, body string) (int, []byte) {
	t.Helper()
	status, _, raw := callAt(t, fed.APIURL, key, method, path, body)
	return status, raw
}

// requireError checks an answer is status with a JSON error body of code.
func requireError(t *testing.T, status, gotStatus int, raw []byte, code, what string) {
	t.Helper()
	require.Equal(t, status, gotStatus, "%s: %s", what, raw)
	var eb api.ErrorBody
	require.NoError(t, json.Unmarshal(raw, &eb), "%s: the error is JSON: %s", what, raw)
	require.Equal(t, code, eb.Error.Code, what)
	require.NotEmpty(t, eb.Error.Message, what)
}

// pg is a connection to the hub's PostgreSQL, the oracle of what changed.
func pg(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func countRows(t *testing.T, conn *pgx.Conn, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), query, args...).Scan(&n))
	return n
}

// latestRun is the run ID of workflow id's latest run, "" when it never ran.
func latestRun(t *testing.T, tc client.Client, id string) string {
	t.Helper()
	desc, err := tc.DescribeWorkflowExecution(t.Context(), id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return ""
	}
	require.NoError(t, err)
	return desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}

// sweepSignalsSince counts the sweep-now signals the health monitor got
// after since, from its run runID on through every run it continued as.
func sweepSignalsSince(t *testing.T, tc client.Client, runID string, since time.Time) int {
	t.Helper()
	n := 0
	for runID != "" {
		next := ""
		it := tc.GetWorkflowHistory(t.Context(), workflows.HealthMonitorID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == workflows.SweepNowSignal &&
				ev.GetEventTime().AsTime().After(since) {
				n++
			}
			if a := ev.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
				next = a.GetNewExecutionRunId()
			}
		}
		runID = next
	}
	return n
}

// TestReaderKeyChangesNothing reproduces finding 3 of the security review:
// a reader key could load rows with an ETL job, start schema, ontology and
// catalog syncs and health sweeps, and stage uploads. Each is now a 403,
// and PostgreSQL and Temporal show nothing was started.
func TestReaderKeyChangesNothing(t *testing.T) {
	routableNodes(t)
	reader := newKey(t, "reader", store.RoleReader)
	conn := pg(t)
	tc := temporalClient(t)
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(t, err)
	onto, err := ontology.Embedded()
	require.NoError(t, err)
	syncs := []string{workflows.SchemaSyncID(len(migs)), workflows.OntologySyncID(onto.Version), workflows.CatalogSyncID}
	runs := map[string]string{}
	for _, id := range syncs {
		runs[id] = latestRun(t, tc, id)
	}
	monitorRun := latestRun(t, tc, workflows.HealthMonitorID)
	require.NotEmpty(t, monitorRun)
	jobs := countRows(t, conn, `SELECT count(*) FROM jobs`)
	since := time.Now()

	etl := `{"kind": "etl", "spec": {"object": "uploads/00000000-0000-4000-8000-000000000000/n.csv", "table": "neuron",
		"node": "lab-a", "dataset": {"dataset_id": "5b0f3f0e-1d7a-4c51-9a59-000000000003", "name": "reader etl", "owner": "x",
		"animal": "mouse", "microscopy": "SBEM"}}}`
	for _, r := range []struct{ method, path, body string }{
		{http.MethodPost, "/v1/jobs", etl},
		{http.MethodPost, "/v1/jobs", `{"kind": "analytics", "spec": {"analysis": "summary", "table": "neuron", "column": "voxel_volume"}}`},
		{http.MethodPost, "/v1/federation/schema/sync", ""},
		{http.MethodPost, "/v1/ontology/sync", ""},
		{http.MethodPost, "/v1/datasets/sync", ""},
		{http.MethodPost, "/v1/datasets/uploads", `{"filename": "neurons.csv"}`},
		{http.MethodPost, "/v1/federation/health/sweep", ""},
		{http.MethodPost, "/v1/federation/clusters", `{"name": "sec-reader-enrol"}`},
		{http.MethodDelete, "/v1/federation/clusters/lab-a", ""},
	} {
		status, raw := keyDo(t, reader.key, r.method, r.path, r.body)
		requireError(t, http.StatusForbidden, status, raw, "forbidden", r.method+" "+r.path)
	}

	require.Equal(t, jobs, countRows(t, conn, `SELECT count(*) FROM jobs`), "no job was queued")
	for _, id := range syncs {
		require.Equal(t, runs[id], latestRun(t, tc, id), "no new run of %s", id)
	}
	require.Zero(t, sweepSignalsSince(t, tc, monitorRun, since), "the health monitor was not signalled")
	require.Zero(t, countRows(t, conn, `SELECT count(*) FROM clusters WHERE name = 'sec-reader-enrol'`), "nothing was enrolled")
	require.Equal(t, "active", clusterStatus(t, conn, "lab-a"), "lab-a is not revoked")
	// Reading is still allowed.
	status, raw := keyDo(t, reader.key, http.MethodGet, "/v1/jobs?limit=1", "")
	require.Equal(t, http.StatusOK, status, string(raw))
}

func clusterStatus(t *testing.T, conn *pgx.Conn, name string) string {
	t.Helper()
	var s string
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT status FROM clusters WHERE name = $1`, name).Scan(&s))
	return s
}

// startJobAs starts an analytics job on lab-b with key.
func startJobAs(t *testing.T, key string) api.JobStarted {
	t.Helper()
	status, raw := keyDo(t, key, http.MethodPost, "/v1/jobs",
		`{"kind": "analytics", "spec": {"analysis": "summary", "table": "neuron", "column": "voxel_volume", "nodes": ["lab-b"]}}`)
	require.Equal(t, http.StatusAccepted, status, string(raw))
	var st api.JobStarted
	require.NoError(t, json.Unmarshal(raw, &st))
	return st
}

// cancelRequested says whether anyone asked Temporal to cancel workflow id.
func cancelRequested(t *testing.T, tc client.Client, id string) bool {
	t.Helper()
	it := tc.GetWorkflowHistory(t.Context(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED {
			return true
		}
	}
	return false
}

// TestJobCancelOwnerOrAdmin: a job records the key that created it; only
// that key or an admin key cancels it. Finding 3 of the security review: a
// reader cancelled a job an admin had started.
func TestJobCancelOwnerOrAdmin(t *testing.T) {
	routableNodes(t)
	reader := newKey(t, "reader", store.RoleReader)
	owner := newKey(t, "operator-owner", store.RoleOperator)
	other := newKey(t, "operator-other", store.RoleOperator)
	tc := temporalClient(t)
	// lab-b holds its answers back, so the jobs stay running.
	require.NoError(t, fed.StopNode(t.Context(), "lab-b", false))
	require.NoError(t, fed.StartNodeWith(t.Context(), "lab-b", map[string]string{"SYNDB_NODE_ANSWER_DELAY": "30s"}))
	t.Cleanup(func() {
		_ = fed.StopNode(context.Background(), "lab-b", false)
		require.NoError(t, fed.StartNode(context.Background(), "lab-b"))
	})
	adminJob := startJobAs(t, fed.APIKey)
	opJob := startJobAs(t, owner.key)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, id := range []string{adminJob.JobID, opJob.JobID} {
		require.NoError(t, pollUntil(ctx, func() error {
			if js := jobStatus(t, id); js.State != domain.JobRunning {
				return fmt.Errorf("job %s is %s", id, js.State)
			}
			return nil
		}))
	}

	// GET shows the owner: the key and its account.
	js := jobStatus(t, opJob.JobID)
	require.NotNil(t, js.Owner)
	require.Equal(t, domain.JobOwner{KeyID: owner.id, KeyName: owner.name, Account: "sec-" + owner.name}, *js.Owner)
	require.NotNil(t, jobStatus(t, adminJob.JobID).Owner)
	require.Equal(t, "dev", jobStatus(t, adminJob.JobID).Owner.KeyName)

	for _, c := range []struct {
		who roleKey
		job api.JobStarted
	}{{reader, adminJob}, {other, adminJob}, {owner, adminJob}, {reader, opJob}, {other, opJob}} {
		status, raw := keyDo(t, c.who.key, http.MethodDelete, "/v1/jobs/"+c.job.JobID, "")
		requireError(t, http.StatusForbidden, status, raw, "forbidden", c.who.name+" cancels "+c.job.JobID)
	}
	for _, j := range []api.JobStarted{adminJob, opJob} {
		require.Equal(t, domain.JobRunning, jobStatus(t, j.JobID).State)
		require.False(t, cancelRequested(t, tc, j.WorkflowID), "nobody asked Temporal to cancel %s", j.WorkflowID)
	}

	status, raw := keyDo(t, owner.key, http.MethodDelete, "/v1/jobs/"+opJob.JobID, "")
	require.Equal(t, http.StatusAccepted, status, string(raw))
	status, raw = keyDo(t, fed.APIKey, http.MethodDelete, "/v1/jobs/"+adminJob.JobID, "")
	require.Equal(t, http.StatusAccepted, status, string(raw))
	for _, j := range []api.JobStarted{adminJob, opJob} {
		require.Equal(t, domain.JobCancelled, waitJob(t, j.JobID, 25*time.Second).State)
		require.True(t, cancelRequested(t, tc, j.WorkflowID))
	}
	// An admin cancels an operator's job too.
	opJob2 := startJobAs(t, owner.key)
	status, raw = keyDo(t, fed.APIKey, http.MethodDelete, "/v1/jobs/"+opJob2.JobID, "")
	require.Equal(t, http.StatusAccepted, status, string(raw))
	require.Equal(t, domain.JobCancelled, waitJob(t, opJob2.JobID, 25*time.Second).State)
}

// walkPath fills a route's parameters: a name no node has, a UUID no job
// or dataset has.
func walkPath(path string) string {
	return regexp.MustCompile(`:[a-z_]+`).ReplaceAllStringFunc(path, func(p string) string {
		if p == ":id" {
			return "00000000-0000-4000-8000-00000000dead"
		}
		return "sec-walk"
	})
}

// TestRoleTableWalk calls every route of the API's route table with no key
// and with a reader, an operator and an admin key on the real API: below
// the route's role is a 403 with a JSON error, no key a 401, at or above it
// anything but 401 or 403. Bodies carry an unknown field, so an allowed
// POST is refused by the handler (400) and starts nothing.
func TestRoleTableWalk(t *testing.T) {
	keys := map[string]string{
		store.RoleReader:   newKey(t, "walk-reader", store.RoleReader).key,
		store.RoleOperator: newKey(t, "walk-operator", store.RoleOperator).key,
		store.RoleAdmin:    newKey(t, "walk-admin", store.RoleAdmin).key,
	}
	routes := api.New(config.API{}, api.Deps{}).Routes()
	require.Greater(t, len(routes), 20)
	for _, r := range routes {
		path := walkPath(r.Path)
		body := ""
		if r.Method == http.MethodPost {
			body = `{"sec_role_walk": true}`
		}
		status, raw := keyDo(t, "", r.Method, path, body)
		if r.Role == api.Public {
			require.NotContains(t, []int{401, 403}, status, "%s %s: %s", r.Method, path, raw)
			continue
		}
		requireError(t, http.StatusUnauthorized, status, raw, "unauthorized", "no key: "+r.Method+" "+path)
		for _, role := range store.Roles {
			status, raw := keyDo(t, keys[role], r.Method, path, body)
			what := fmt.Sprintf("%s key: %s %s (needs %s)", role, r.Method, path, r.Role)
			if store.RoleRank(role) < store.RoleRank(r.Role) {
				requireError(t, http.StatusForbidden, status, raw, "forbidden", what)
				continue
			}
			require.NotContains(t, []int{401, 403}, status, "%s: %s", what, raw)
			require.Less(t, status, 500, "%s: %s", what, raw)
		}
	}
}

// TestInputValidation reproduces finding 9's input items: NUL and invalid
// UTF-8 in text parameters reached PostgreSQL (500); ttl_seconds that
// overflows a duration became a 1.29 s token. Each is now a 400.
func TestInputValidation(t *testing.T) {
	conn := pg(t)
	const dataset = "0b7f1e1c-3c56-4f0e-8d1e-4d3f8f1c2a10"
	for _, bad := range []string{"%00", "%ff", "a%00b", "lab%c3"} {
		for _, r := range []struct{ method, path string }{
			{http.MethodGet, "/v1/datasets?q=" + bad},
			{http.MethodGet, "/v1/datasets?animal=" + bad},
			{http.MethodGet, "/v1/datasets?microscopy=" + bad},
			{http.MethodGet, "/v1/datasets?node=" + bad},
			{http.MethodGet, "/v1/datasets/" + bad + "/" + dataset},
			{http.MethodGet, "/v1/federation/clusters/" + bad + "/health/history"},
			{http.MethodDelete, "/v1/federation/clusters/" + bad},
			{http.MethodGet, "/v1/federation/routing?nodes=" + bad},
		} {
			status, raw := apiDo(t, r.method, r.path, "")
			requireError(t, http.StatusBadRequest, status, raw, "bad_request", r.method+" "+r.path)
		}
	}
	// A NUL in a JSON string (a job spec is stored as jsonb) and a body
	// that is not UTF-8.
	for _, body := range []string{
		`{"kind": "etl", "spec": {"object": "uploads/00000000-0000-4000-8000-000000000000/n.csv", "table": "neuron",
			"node": "lab-a", "dataset": {"dataset_id": "5b0f3f0e-1d7a-4c51-9a59-000000000004", "name": "nul\u0000name"}}}`,
		"{\"kind\": \"analytics\", \"spec\": {\"analysis\": \"summary\", \"table\": \"neuron\", \"column\": \"voxel_volume\", \"nodes\": [\"lab-\xff\"]}}",
	} {
		jobs := countRows(t, conn, `SELECT count(*) FROM jobs`)
		status, raw := apiDo(t, http.MethodPost, "/v1/jobs", body)
		requireError(t, http.StatusBadRequest, status, raw, "bad_request", body)
		require.Equal(t, jobs, countRows(t, conn, `SELECT count(*) FROM jobs`), "no job was queued")
	}
	for _, q := range []string{"limit=-1", "offset=-1", "offset=99999999999", "limit=18446744073709551617"} {
		status, raw := apiDo(t, http.MethodGet, "/v1/jobs?"+q, "")
		requireError(t, http.StatusBadRequest, status, raw, "bad_request", q)
	}

	// 18446744075 s is 2^64 ns + 1.29 s: multiplied into a Duration it wrapped.
	for _, ttl := range []string{"18446744075", "9223372036854775807", "-1", "2592001", "1e30", "18446744073709551616"} {
		status, raw := apiDo(t, http.MethodPost, "/v1/federation/clusters", `{"name": "sec-ttl", "ttl_seconds": `+ttl+`}`)
		requireError(t, http.StatusBadRequest, status, raw, "bad_request", "ttl_seconds="+ttl)
		require.Zero(t, countRows(t, conn, `SELECT count(*) FROM enrollment_tokens WHERE cluster = 'sec-ttl'`), "no token for ttl %s", ttl)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, fed.APIURL+"/v1/federation/clusters/sec-ttl", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+fed.APIKey)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
	})
	const ttl = 7200
	status, raw := apiDo(t, http.MethodPost, "/v1/federation/clusters", fmt.Sprintf(`{"name": "sec-ttl", "ttl_seconds": %d}`, ttl))
	require.Equal(t, http.StatusCreated, status, string(raw))
	var e store.Enrollment
	require.NoError(t, json.Unmarshal(raw, &e))
	require.WithinDuration(t, time.Now().Add(ttl*time.Second), e.ExpiresAt, 10*time.Second)
	// PostgreSQL's own clock says the same.
	var left float64
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT extract(epoch FROM expires_at - now())::float8 FROM enrollment_tokens
		WHERE cluster = 'sec-ttl' AND used_at IS NULL`).Scan(&left))
	require.InDelta(t, ttl, left, 10)
}

// TestKeyManagement: an admin creates an operator key through the API; the
// key has its role at once, PostgreSQL holds only its hash, and once
// revoked it is refused.
func TestKeyManagement(t *testing.T) {
	conn := pg(t)
	name := fmt.Sprintf("sec-api-key-%d", time.Now().UnixNano())
	status, raw := apiDo(t, http.MethodPost, "/v1/apikeys", `{"name": "`+name+`", "account": "sec-keys", "role": "operator"}`)
	require.Equal(t, http.StatusCreated, status, string(raw))
	var ck api.CreatedKey
	require.NoError(t, json.Unmarshal(raw, &ck))
	t.Cleanup(func() {
		_, err := conn.Exec(context.Background(), `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, ck.ID)
		require.NoError(t, err)
	})
	require.Equal(t, store.RoleOperator, ck.Role)
	var role string
	var stored int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT k.role, count(*) OVER () FROM api_keys k JOIN accounts a ON a.id = k.account_id
		WHERE k.name = $1 AND a.name = 'sec-keys' AND k.key_hash = sha256(convert_to($2, 'UTF8'))`, name, ck.Key).Scan(&role, &stored))
	require.Equal(t, store.RoleOperator, role)
	require.Equal(t, 1, stored)

	status, raw = keyDo(t, ck.Key, http.MethodPost, "/v1/federation/schema/sync", `{"sec_probe": 1}`)
	requireError(t, http.StatusBadRequest, status, raw, "bad_request", "an operator passes the role check of a sync")
	status, raw = keyDo(t, ck.Key, http.MethodPost, "/v1/apikeys", `{"name": "escalate", "role": "admin"}`)
	requireError(t, http.StatusForbidden, status, raw, "forbidden", "an operator makes no keys")
	status, raw = apiDo(t, http.MethodGet, "/v1/apikeys", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Contains(t, string(raw), name)
	require.NotContains(t, string(raw), ck.Key)

	status, raw = apiDo(t, http.MethodDelete, fmt.Sprintf("/v1/apikeys/%d", ck.ID), "")
	require.Equal(t, http.StatusOK, status, string(raw))
	status, raw = keyDo(t, ck.Key, http.MethodGet, "/v1/jobs", "")
	requireError(t, http.StatusUnauthorized, status, raw, "unauthorized", "a revoked key")
}

// TestFlightRoleWalk walks the hub Flight service's route table on the real
// API, as TestRoleTableWalk walks the HTTP one: a reader, an operator and an
// admin key each plan a federated query (GetFlightInfo) and read it (DoGet),
// and get the nodes' count; no key, an invalid key and a revoked key are
// Unauthenticated on every method, before a ticket is looked at (the
// owner's ticket still reads afterwards); and every method the hub does not
// serve (DoPut, DoAction, ListActions, …) is Unimplemented for every role.
func TestFlightRoleWalk(t *testing.T) {
	routableNodes(t)
	keys := map[string]string{}
	for _, role := range store.Roles {
		keys[role] = newKey(t, "flight-walk-"+role, role).key
	}
	revoked := newKey(t, "flight-walk-revoked", store.RoleAdmin)
	status, raw := apiDo(t, http.MethodDelete, fmt.Sprintf("/v1/apikeys/%d", revoked.id), "")
	require.Equal(t, http.StatusOK, status, string(raw))
	refused := map[string]string{"no key": "", "an invalid key": "sdb_not-a-key", "a revoked key": revoked.key}

	cl, err := flight.NewClientWithMiddleware(fed.Env["SYNDB_API_FLIGHT_ADDR"], nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer func() { _ = cl.Close() }()
	withKey := func(key string) context.Context {
		if key == "" {
			return t.Context()
		}
		return metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+key)
	}
	desc := &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte(`{"sql": "SELECT count() AS n FROM neuron"}`)}
	want := nodeCount(t, "lab-a", "neuron") + nodeCount(t, "lab-b", "neuron")
	read := func(key string, tkt *flight.Ticket) (uint64, error) {
		stream, err := cl.DoGet(withKey(key), tkt)
		if err != nil {
			return 0, err
		}
		rd, err := flight.NewRecordReader(stream)
		if err != nil {
			return 0, err
		}
		defer rd.Release()
		var n uint64
		for rd.Next() {
			n += rd.RecordBatch().Column(0).(*array.Uint64).Value(0)
		}
		return n, rd.Err()
	}

	routes := api.FlightRoutes()
	served := map[string]bool{}
	for _, r := range routes {
		served[r.Method] = true
		require.Equal(t, store.RoleReader, r.Role, "%s: a federated query is a reader's, as POST /v1/query", r.Method)
	}
	require.Equal(t, map[string]bool{"GetFlightInfo": true, "DoGet": true}, served)
	for _, role := range store.Roles {
		info, err := cl.GetFlightInfo(withKey(keys[role]), desc)
		require.NoError(t, err, "%s plans a query", role)
		tkt := info.GetEndpoint()[0].GetTicket()
		for what, key := range refused {
			_, err := read(key, tkt)
			require.Equal(t, codes.Unauthenticated, grpcstatus.Code(err), "DoGet with %s: %v", what, err)
		}
		n, err := read(keys[role], tkt)
		require.NoError(t, err, "%s reads its query", role)
		require.Equal(t, want, n, role)
	}
	for _, m := range flighttest.Methods() {
		for what, key := range refused {
			code, err := flighttest.Call(withKey(key), cl, m)
			require.NoError(t, err)
			require.Equal(t, codes.Unauthenticated, code, "%s with %s", m, what)
		}
		if served[m] {
			continue
		}
		for _, role := range store.Roles {
			code, err := flighttest.Call(withKey(keys[role]), cl, m)
			require.NoError(t, err)
			require.Equal(t, codes.Unimplemented, code, "%s as %s", m, role)
		}
	}
}
