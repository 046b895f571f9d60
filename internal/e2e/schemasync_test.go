package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/schemastatus"
	"github.com/syndb/federation/internal/seed"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/schemas"
	"github.com/syndb/federation/workflows"
)

func apiDo(t testing.TB, method, path, body string) (int, []byte) {
	t.Helper()
	return apiDoCtx(t.Context(), t, method, path, body)
}

// apiDoCtx is apiDo under ctx: cleanups, which run after t.Context() ended.
func apiDoCtx(ctx context.Context, t testing.TB, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, fed.APIURL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+fed.APIKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw
}

func temporalClient(t testing.TB) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: fed.Env["SYNDB_TEMPORAL_ADDRESS"]})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func nodeConn(t testing.TB, name string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(t.Context(), config.ClickHouse{Addr: fed.Stack.Nodes[name].Addr(), User: "default", Database: "syndb"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func ledgerCounts(t *testing.T, conn driver.Conn) map[int]int {
	t.Helper()
	rows, err := conn.Query(t.Context(), "SELECT version, count() FROM "+migrate.LedgerTable+" GROUP BY version ORDER BY version")
	require.NoError(t, err)
	defer func() { _ = rows.Close() }()
	out := map[int]int{}
	for rows.Next() {
		var v uint32
		var n uint64
		require.NoError(t, rows.Scan(&v, &n))
		out[int(v)] = int(n)
	}
	require.NoError(t, rows.Err())
	return out
}

func startSync(t *testing.T) api.SchemaSyncStarted {
	t.Helper()
	status, raw := apiDo(t, http.MethodPost, "/v1/federation/schema/sync", "")
	require.Equal(t, http.StatusAccepted, status, string(raw))
	var started api.SchemaSyncStarted
	require.NoError(t, json.Unmarshal(raw, &started))
	return started
}

// behindHead puts lab-a and lab-b back at the seed's schema when an
// earlier test synced them, so the sync has work in any test order: their
// ledgers keep the seed's versions only, the columns migration 3 adds are
// dropped (the ontology tables of migration 4 stay: re-applying their
// CREATE ... IF NOT EXISTS keeps their terms), and PostgreSQL forgets the
// later versions. t.Cleanup syncs the fleet to the head again if the test
// leaves a node behind.
func behindHead(t *testing.T, head int) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		for _, n := range []string{"lab-a", "lab-b"} {
			conn, err := clickhouse.Open(ctx, config.ClickHouse{Addr: fed.Stack.Nodes[n].Addr(), User: "default", Database: "syndb"})
			require.NoError(t, err)
			v, err := migrate.Version(ctx, conn)
			_ = conn.Close()
			require.NoError(t, err)
			if v == head {
				continue
			}
			status, raw := apiDoCtx(ctx, t, http.MethodPost, "/v1/federation/schema/sync", "")
			require.Equal(t, http.StatusAccepted, status, string(raw))
			var started api.SchemaSyncStarted
			require.NoError(t, json.Unmarshal(raw, &started))
			tc, err := client.Dial(client.Options{HostPort: fed.Env["SYNDB_TEMPORAL_ADDRESS"]})
			require.NoError(t, err)
			defer tc.Close()
			require.NoError(t, tc.GetWorkflow(ctx, started.WorkflowID, started.RunID).Get(ctx, nil), "restore the fleet at v%d", head)
			return
		}
	})
	pg, err := pgx.Connect(t.Context(), fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(t, err)
	defer func() { _ = pg.Close(context.Background()) }()
	for _, n := range []string{"lab-a", "lab-b"} {
		conn := nodeConn(t, n)
		ctx := t.Context()
		v, err := migrate.Version(ctx, conn)
		require.NoError(t, err)
		if v > seed.SchemaVersion {
			const behind = "schema_migrations_behind"
			for _, q := range []string{
				"DROP TABLE IF EXISTS " + behind,
				"CREATE TABLE " + behind + " AS " + migrate.LedgerTable,
				fmt.Sprintf("INSERT INTO %s SELECT * FROM %s WHERE version <= %d", behind, migrate.LedgerTable, seed.SchemaVersion),
				// One RENAME swaps the ledgers, so the agent, which creates a
				// missing ledger when it reads its version, never sees none.
				"DROP TABLE IF EXISTS " + behind + "_old",
				"RENAME TABLE " + migrate.LedgerTable + " TO " + behind + "_old, " + behind + " TO " + migrate.LedgerTable,
				"DROP TABLE " + behind + "_old",
			} {
				require.NoError(t, conn.Exec(ctx, q), "%s: %s", n, q)
			}
			for _, col := range []string{"cristae_count", "cristae_surface_area"} {
				var has uint64
				require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = 'syndb' AND table = 'mitochondria' AND name = ?", col).Scan(&has))
				if has > 0 {
					require.NoError(t, conn.Exec(ctx, "ALTER TABLE mitochondria DROP COLUMN "+col), n)
				}
			}
		}
		_, err = pg.Exec(ctx, "DELETE FROM cluster_schema_versions WHERE cluster = $1 AND version > $2", n, seed.SchemaVersion)
		require.NoError(t, err)
		_, err = pg.Exec(ctx, "UPDATE clusters SET schema_version = LEAST(schema_version, $2) WHERE name = $1", n, seed.SchemaVersion)
		require.NoError(t, err)
	}
}

func TestSchemaSyncEndToEnd(t *testing.T) {
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(t, err)
	head := len(migs)
	tc := temporalClient(t)
	behindHead(t, head)

	// Before: the nodes are at the seed's schema, behind the head.
	for _, n := range []string{"lab-a", "lab-b"} {
		v, err := migrate.Version(t.Context(), nodeConn(t, n))
		require.NoError(t, err)
		require.Equal(t, seed.SchemaVersion, v, "node %s must start behind so the sync has work", n)
		require.Less(t, v, head, "node %s must start behind so the sync has work", n)
	}

	// lab-b is down when the sync runs.
	labB := agent(t, "lab-b")
	labB.Stop(t.Context())

	began := time.Now()
	started := startSync(t)
	require.Equal(t, workflows.SchemaSyncID(head), started.WorkflowID)
	require.Equal(t, head, started.TargetVersion)
	require.NotEmpty(t, started.RunID)
	require.Contains(t, started.UIURL, "/namespaces/default/workflows/"+started.WorkflowID+"/"+started.RunID)
	require.True(t, strings.HasSuffix(started.StatusURL, "/v1/federation/schema/sync/"+started.WorkflowID))

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var res workflows.SchemaSyncResult
	require.NoError(t, tc.GetWorkflow(ctx, started.WorkflowID, started.RunID).Get(ctx, &res),
		"a node that cannot be reached must not fail the run")
	t.Logf("sync to v%d with lab-b down finished in %s", head, time.Since(began))
	require.Equal(t, head, res.Hub.To)
	require.Equal(t, 1, res.Synced, "%+v", res)
	require.Equal(t, 1, res.Pending, "%+v", res)
	byNode := map[string]workflows.NodeSyncResult{}
	for _, n := range res.Nodes {
		byNode[n.Name] = n
	}
	require.Equal(t, workflows.NodeSynced, byNode["lab-a"].Status)
	require.Equal(t, head, byNode["lab-a"].To)
	require.NotEmpty(t, byNode["lab-a"].Applied)
	require.Equal(t, workflows.NodePending, byNode["lab-b"].Status)
	require.NotEmpty(t, byNode["lab-b"].Error)
	require.Less(t, byNode["lab-b"].To, head, "a pending node keeps its version")

	// The run is findable by its search attributes.
	requireListed(t, tc, fmt.Sprintf(`WorkflowId = %q AND RunId = %q AND SyndbTargetVersion = %d AND SyndbNodeCount = 2 AND SyndbOutcome = "partial"`,
		started.WorkflowID, started.RunID, head))

	// lab-b comes back: it registers, and is caught up with no other POST.
	labB.Start(t.Context())
	catchUp := workflows.SchemaCatchUpID("lab-b", head)
	var cres workflows.SchemaSyncResult
	require.NoError(t, pollUntil(ctx, func() error {
		// This test's catch-up, not one an earlier run left under the ID.
		d, err := tc.DescribeWorkflowExecution(ctx, catchUp, "")
		if err != nil {
			return err
		}
		if info := d.GetWorkflowExecutionInfo(); info.GetStartTime().AsTime().Before(began) {
			return fmt.Errorf("no catch-up of lab-b since the sync began")
		}
		return tc.GetWorkflow(ctx, catchUp, d.GetWorkflowExecutionInfo().GetExecution().GetRunId()).Get(ctx, &cres)
	}), "lab-b was not caught up after it registered")
	t.Logf("lab-b caught up %s after the sync began", time.Since(began))
	require.Len(t, cres.Nodes, 1)
	require.Equal(t, "lab-b", cres.Nodes[0].Name)
	require.Equal(t, workflows.NodeSynced, cres.Nodes[0].Status, "%+v", cres.Nodes[0])
	require.Equal(t, head, cres.Nodes[0].To)
	require.NotEmpty(t, cres.Nodes[0].Applied)

	// GET /v1/federation/schema: everyone at the head, nothing pending.
	status, raw := apiDo(t, http.MethodGet, "/v1/federation/schema", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var ss schemastatus.Status
	require.NoError(t, json.Unmarshal(raw, &ss))
	require.Equal(t, head, ss.Head)
	require.Equal(t, head, ss.Target)
	require.Equal(t, head, ss.Hub.Version)
	require.Empty(t, ss.Hub.Pending)
	require.Nil(t, ss.Hub.Drift)
	require.GreaterOrEqual(t, ss.Counts.Synced, 2)
	for _, n := range ss.Nodes {
		if n.Name == "lab-a" || n.Name == "lab-b" {
			require.Equal(t, schemastatus.StateSynced, n.State, n.Name)
			require.Equal(t, head, n.Version, n.Name)
			require.Empty(t, n.Pending, n.Name)
		}
	}

	// The nodes' own warehouses: every migration in the ledger exactly once,
	// and the altered table has its new column.
	for _, n := range []string{"lab-a", "lab-b"} {
		conn := nodeConn(t, n)
		counts := ledgerCounts(t, conn)
		require.Len(t, counts, head, n)
		for v := 1; v <= head; v++ {
			require.Equal(t, 1, counts[v], "node %s version %d", n, v)
		}
		var cols uint64
		require.NoError(t, conn.QueryRow(t.Context(),
			"SELECT count() FROM system.columns WHERE database = 'syndb' AND table = 'mitochondria' AND name = 'cristae_count'").Scan(&cols))
		require.Equal(t, uint64(1), cols, "node %s lacks the column migration %d adds", n, head)
	}

	// PostgreSQL recorded the versions.
	st, err := store.Open(t.Context(), fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(t, err)
	defer st.Close()
	for _, n := range []string{"lab-a", "lab-b"} {
		c, err := st.Cluster(t.Context(), n)
		require.NoError(t, err)
		require.Equal(t, head, c.SchemaVersion)
		hist, err := st.SchemaHistory(t.Context(), n)
		require.NoError(t, err)
		require.Len(t, hist, head)
		for i, h := range hist {
			require.Equal(t, migs[i].Checksum, h.Checksum)
		}
	}

	// The status endpoint reports the finished run per node.
	status, raw = apiDo(t, http.MethodGet, "/v1/federation/schema/sync/"+started.WorkflowID, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var st1 api.SchemaSyncStatus
	require.NoError(t, json.Unmarshal(raw, &st1))
	require.Equal(t, "completed", st1.Status)
	require.Len(t, st1.Nodes, 2)
	require.Equal(t, 1, st1.Synced)
	require.Equal(t, 1, st1.Pending)

	recordHistory(t, tc, started.WorkflowID, started.RunID)

	// A second POST runs again and applies nothing twice.
	again := startSync(t)
	require.Equal(t, started.WorkflowID, again.WorkflowID)
	require.NotEqual(t, started.RunID, again.RunID, "a finished sync may run again")
	var res2 workflows.SchemaSyncResult
	require.NoError(t, tc.GetWorkflow(ctx, again.WorkflowID, again.RunID).Get(ctx, &res2))
	require.Empty(t, res2.Hub.Applied)
	require.Equal(t, 2, res2.Synced)
	for _, n := range res2.Nodes {
		require.Empty(t, n.Applied, "node %s applied something twice", n.Name)
		require.Equal(t, head, n.From)
	}
	for _, n := range []string{"lab-a", "lab-b"} {
		for v, c := range ledgerCounts(t, nodeConn(t, n)) {
			require.Equal(t, 1, c, "node %s version %d", n, v)
		}
	}
}

func TestClustersListed(t *testing.T) {
	status, raw := apiDo(t, http.MethodGet, "/v1/federation/clusters", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var list api.ClusterList
	require.NoError(t, json.Unmarshal(raw, &list))
	byName := map[string]domain.Cluster{}
	for _, c := range list.Clusters {
		byName[c.Name] = c
	}
	for _, name := range []string{"lab-a", "lab-b"} {
		c, ok := byName[name]
		require.True(t, ok, "%s is not listed", name)
		require.Equal(t, name, c.Name)
		id, err := fed.NodePeerID(name)
		require.NoError(t, err)
		require.Equal(t, id, c.PeerID)
		require.NotEmpty(t, c.Addrs)
		require.NotEmpty(t, c.Health)
		require.False(t, c.LastSeen.IsZero())
		require.Equal(t, fed.Stack.Nodes[name].Addr(), c.ClickHouseAddr)
	}
}

func TestProbesAndAuth(t *testing.T) {
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(fed.APIURL + path) //nolint:noctx // a plain probe
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, fed.APIURL+"/v1/federation/schema/sync", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer sdb_not-a-real-key")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	var eb api.ErrorBody
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&eb))
	require.Equal(t, "unauthorized", eb.Error.Code)
}

// recordHistory writes the run's history to workflows/testdata when
// SYNDB_RECORD_HISTORY names a file there (go tool task record-history).
func recordHistory(t *testing.T, tc client.Client, id, runID string) {
	t.Helper()
	recordHistoryTo(t, tc, id, runID, os.Getenv("SYNDB_RECORD_HISTORY"))
}

// recordHistoryTo writes a run's history (so far) to workflows/testdata/name.
func recordHistoryTo(t *testing.T, tc client.Client, id, runID, name string) {
	t.Helper()
	if name == "" {
		return
	}
	it := tc.GetWorkflowHistory(t.Context(), id, runID, false, 0)
	var events []json.RawMessage
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		raw, err := protojson.Marshal(ev)
		require.NoError(t, err)
		events = append(events, raw)
	}
	out, err := json.MarshalIndent(map[string]any{"events": events}, "", "  ")
	require.NoError(t, err)
	path := filepath.Join("..", "..", "workflows", "testdata", name)
	require.NoError(t, os.WriteFile(path, out, 0o644))
	t.Logf("recorded %d events of %s to %s", len(events), id, path)
	fmt.Println("recorded history:", path)
}

// apiReady asks the API at base whether it is ready: nil once /readyz
// answers 200.
func apiReady(ctx context.Context, base string) error {
	return apiReadyVia(ctx, http.DefaultClient, base)
}

// apiReadyVia is apiReady through client (one that trusts an HTTPS API's
// certificate).
func apiReadyVia(ctx context.Context, client *http.Client, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz answered %d", resp.StatusCode)
	}
	return nil
}

// pollUntil calls fn every 250 ms until it returns nil or ctx ends.
func pollUntil(ctx context.Context, fn func() error) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// requireListed waits until a visibility query finds a workflow.
func requireListed(t *testing.T, tc client.Client, query string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			return err
		}
		if len(resp.GetExecutions()) == 0 {
			return fmt.Errorf("no workflow matches %s", query)
		}
		return nil
	}))
}
