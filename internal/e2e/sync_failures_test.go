package e2e

// These tests need the fleet synced to the head: each syncs it first.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/schemastatus"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/schemas"
	"github.com/syndb/federation/workflows"
)

// syncFleet POSTs a sync to the head and waits for it.
func syncFleet(t *testing.T) workflows.SchemaSyncResult {
	t.Helper()
	return postSync(t, 0, 2*time.Minute)
}

// postSync POSTs a sync to target (0: the head) and waits, at most within,
// for its result.
func postSync(t testing.TB, target int, within time.Duration) workflows.SchemaSyncResult {
	t.Helper()
	res, _ := postSyncRun(t, target, within)
	return res
}

// postSyncRun is postSync that also returns the run it started.
func postSyncRun(t testing.TB, target int, within time.Duration) (workflows.SchemaSyncResult, api.SchemaSyncStarted) {
	t.Helper()
	return postSyncBody(t, fmt.Sprintf(`{"target_version": %d}`, target), within)
}

// postSyncBody POSTs a sync with body and waits, at most within, for its
// result; it returns the result and the run.
func postSyncBody(t testing.TB, body string, within time.Duration) (workflows.SchemaSyncResult, api.SchemaSyncStarted) {
	t.Helper()
	status, raw := apiDo(t, http.MethodPost, "/v1/federation/schema/sync", body)
	require.Equal(t, http.StatusAccepted, status, string(raw))
	var started api.SchemaSyncStarted
	require.NoError(t, json.Unmarshal(raw, &started))
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	var res workflows.SchemaSyncResult
	require.NoError(t, temporalClient(t).GetWorkflow(ctx, started.WorkflowID, started.RunID).Get(ctx, &res))
	return res, started
}

func nodeResult(res workflows.SchemaSyncResult, name string) workflows.NodeSyncResult {
	for _, n := range res.Nodes {
		if n.Name == name {
			return n
		}
	}
	return workflows.NodeSyncResult{}
}

func schemaStatus(t *testing.T) schemastatus.Status {
	t.Helper()
	status, raw := apiDo(t, http.MethodGet, "/v1/federation/schema", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var ss schemastatus.Status
	require.NoError(t, json.Unmarshal(raw, &ss))
	return ss
}

// TestSchemaDriftIsRefused: a node whose ledger disagrees with the hub's
// migrations is left untouched, the sync says at which version, and the API
// shows it until the ledger is repaired.
func TestSchemaDriftIsRefused(t *testing.T) {
	syncFleet(t)
	conn := nodeConn(t, "lab-b")
	ctx := t.Context()
	before := ledgerCounts(t, conn)

	// Tamper with lab-b's ledger: version 2 recorded with another checksum.
	require.NoError(t, conn.Exec(ctx, "RENAME TABLE "+migrate.LedgerTable+" TO schema_migrations_saved"))
	restored := false
	t.Cleanup(func() {
		// On failure, put the real ledger back for the tests after this one.
		if restored {
			return
		}
		_ = conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+migrate.LedgerTable)
		_ = conn.Exec(context.Background(), "RENAME TABLE schema_migrations_saved TO "+migrate.LedgerTable)
	})
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE "+migrate.LedgerTable+" AS schema_migrations_saved"))
	require.NoError(t, conn.Exec(ctx, "INSERT INTO "+migrate.LedgerTable+
		" SELECT version, name, if(version = 2, 'tampered', checksum), applied_at, duration_ms FROM schema_migrations_saved"))

	res := syncFleet(t)
	b := nodeResult(res, "lab-b")
	require.Equal(t, workflows.NodeDrift, b.Status, "%+v", b)
	require.Contains(t, b.Error, "schema drift at version 2")
	require.Equal(t, workflows.NodeSynced, nodeResult(res, "lab-a").Status, "drift on one node does not hold up another")
	require.Equal(t, 1, res.Drift)
	require.Equal(t, before, ledgerCounts(t, conn), "a drifted node's ledger is not touched")

	ss := schemaStatus(t)
	var found bool
	for _, n := range ss.Nodes {
		if n.Name == "lab-b" {
			found = true
			require.Equal(t, schemastatus.StateDrift, n.State)
			require.NotNil(t, n.Drift)
			require.Equal(t, 2, n.Drift.Version)
			require.Contains(t, n.Drift.Reason, "checksum")
		}
	}
	require.True(t, found)
	require.Equal(t, 1, ss.Counts.Drift)

	// Repaired, the next sync clears the drift.
	require.NoError(t, conn.Exec(ctx, "DROP TABLE "+migrate.LedgerTable))
	require.NoError(t, conn.Exec(ctx, "RENAME TABLE schema_migrations_saved TO "+migrate.LedgerTable))
	restored = true
	res = syncFleet(t)
	require.Equal(t, workflows.NodeSynced, nodeResult(res, "lab-b").Status)
	require.Zero(t, schemaStatus(t).Counts.Drift)
}

// TestSchemaSyncSurvivesWorkerKill: the worker is SIGKILLed while a node's
// sync is in flight (the node has applied its migrations but not answered
// yet); once a worker is back the run completes, and the node's ledger holds
// every migration exactly once.
func TestSchemaSyncSurvivesWorkerKill(t *testing.T) {
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(t, err)
	head := len(migs)
	syncFleet(t) // the fleet's target is the head: a new node is caught up

	const name, db = "lab-k", "syndb_lab_k"
	// A node that holds each answer back for 8 s: the kill lands between
	// its work and its answer, the worst moment for exactly-once.
	chAddr := startExtraNode(t, name, db, map[string]string{"SYNDB_NODE_ANSWER_DELAY": "8s"})

	// It registers at version 0 and its catch-up starts; wait until it has
	// applied everything (the answer is still held back), then kill.
	tc := temporalClient(t)
	id := workflows.SchemaCatchUpID(name, head)
	conn, err := clickhouse.Open(t.Context(), config.ClickHouse{Addr: chAddr, User: "default", Database: db})
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		v, err := migrate.Version(ctx, conn)
		if err != nil {
			return err
		}
		if v < head {
			return fmt.Errorf("%s at version %d", name, v)
		}
		return nil
	}))
	desc, err := tc.DescribeWorkflowExecution(ctx, id, "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, desc.GetWorkflowExecutionInfo().GetStatus())
	require.Len(t, desc.GetPendingActivities(), 1, "the node's sync is in flight")
	require.Equal(t, "sync-"+name, desc.GetPendingActivities()[0].GetActivityId())

	killed := time.Now()
	t.Cleanup(func() {
		if _, running := fed.HubPid("worker"); !running {
			require.NoError(t, fed.StartHub(context.Background(), "worker"))
		}
	})
	require.NoError(t, fed.StopHub(ctx, "worker", true))
	require.NoError(t, fed.StartHub(ctx, "worker"))

	var res workflows.SchemaSyncResult
	require.NoError(t, tc.GetWorkflow(ctx, id, "").Get(ctx, &res))
	t.Logf("catch-up completed %s after the worker was killed", time.Since(killed))
	require.Len(t, res.Nodes, 1)
	require.Equal(t, workflows.NodeSynced, res.Nodes[0].Status, "%+v", res.Nodes[0])
	require.Equal(t, head, res.Nodes[0].To)

	counts := ledgerCounts(t, conn)
	require.Len(t, counts, head)
	for v := 1; v <= head; v++ {
		require.Equal(t, 1, counts[v], "version %d applied %d times", v, counts[v])
	}
	st, err := store.Open(t.Context(), fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(t, err)
	defer st.Close()
	c, err := st.Cluster(t.Context(), name)
	require.NoError(t, err)
	require.Equal(t, head, c.SchemaVersion)
	// Every other node's ledger is untouched by the kill too.
	for _, n := range []string{"lab-a", "lab-b"} {
		for v, c := range ledgerCounts(t, nodeConn(t, n)) {
			require.Equal(t, 1, c, "node %s version %d", n, v)
		}
	}
}

// TestMigrationResumesAfterPartialApply: a warehouse stopped half-way
// through a migration (its first statement ran, nothing recorded) finishes
// it on the next attempt, on the real ClickHouse, recording it once.
func TestMigrationResumesAfterPartialApply(t *testing.T) {
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(t, err)
	const db = "syndb_partial"
	chAddr := fed.Stack.Nodes["lab-a"].Addr()
	admin, err := clickhouse.Open(t.Context(), config.ClickHouse{Addr: chAddr, User: "default", Database: "default"})
	require.NoError(t, err)
	defer func() { _ = admin.Close() }()
	require.NoError(t, admin.Exec(t.Context(), "DROP DATABASE IF EXISTS "+db))
	t.Cleanup(func() { _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	conn, err := clickhouse.Open(t.Context(), config.ClickHouse{Addr: chAddr, User: "default", Database: db})
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()

	// Every migration up to the one that alters a table, then the first
	// statement of that one alone: the state a crash mid-migration leaves.
	alter := -1
	for i, m := range migs {
		if len(migrate.Statements(m.SQL)) > 1 && strings.Contains(migrate.Statements(m.SQL)[0], "ADD COLUMN") {
			alter = i
		}
	}
	require.GreaterOrEqual(t, alter, 0, "no migration adds columns in several statements")
	_, err = migrate.Apply(t.Context(), conn, migs, alter)
	require.NoError(t, err)
	require.NoError(t, conn.Exec(t.Context(), migrate.Statements(migs[alter].SQL)[0]))
	v, err := migrate.Version(t.Context(), conn)
	require.NoError(t, err)
	require.Equal(t, alter, v, "the interrupted migration is not recorded")

	res, err := migrate.Apply(t.Context(), conn, migs, 0)
	require.NoError(t, err, "a re-run after a partial apply succeeds")
	require.Equal(t, alter, res.From)
	require.Equal(t, len(migs), res.To)
	counts := ledgerCounts(t, conn)
	for i := range migs {
		require.Equal(t, 1, counts[i+1], "version %d", i+1)
	}

	// A target below the ledger's version is a no-op: migrations only go forward.
	res, err = migrate.Apply(t.Context(), conn, migs, 1)
	require.NoError(t, err)
	require.Equal(t, len(migs), res.From)
	require.Equal(t, len(migs), res.To)
	require.Empty(t, res.Applied)
}
