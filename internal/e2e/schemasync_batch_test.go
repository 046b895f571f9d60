package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/schemas"
	"github.com/syndb/federation/workflows"
)

// TestSchemaSyncInBatches: a sync with fewer slots than nodes syncs its
// nodes a batch per activity (SyncNodesSchema). Three nodes over two
// slots: lab-a and lab-b in one batch, lab-c (stopped) in the other. Each
// node still has its own outcome: lab-a and lab-b synced, their ledgers
// holding the new version once (ClickHouse is the oracle), lab-c pending
// after its own tries, without holding up the others.
// SYNDB_RECORD_BATCHED_HISTORY names a file in workflows/testdata to
// record the run's history to (go tool task record-history-batched).
func TestSchemaSyncInBatches(t *testing.T) {
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(t, err)
	head := len(migs)
	// The fleet one below the head, and a third node that registers there.
	postSync(t, head-1, 2*time.Minute)
	t.Cleanup(func() { syncAtCleanup(t, head) })
	startExtraNode(t, "lab-c", "syndb_lab_c", nil)
	waitSchemaVersion(t, "lab-c", head-1, 2*time.Minute)
	require.NoError(t, fed.StopNode(t.Context(), "lab-c", false))

	res, run := postSyncBody(t, fmt.Sprintf(`{"target_version": %d, "concurrency": 2}`, head), 3*time.Minute)
	nodes := map[string]workflows.NodeSyncResult{}
	for _, n := range res.Nodes {
		nodes[n.Name] = n
	}
	for _, name := range []string{"lab-a", "lab-b"} {
		require.Equal(t, workflows.NodeSynced, nodes[name].Status, "%s: %+v", name, nodes[name])
		require.Equal(t, head, nodes[name].To, name)
		require.Equal(t, 1, ledgerCounts(t, nodeConn(t, name))[head], "%s applied the head once", name)
	}
	require.Equal(t, workflows.NodePending, nodes["lab-c"].Status, "%+v", nodes["lab-c"])
	require.NotEmpty(t, nodes["lab-c"].Error)
	require.Equal(t, head-1, nodes["lab-c"].To, "a pending node keeps its version")

	// The run's history: two batch activities, named after their nodes.
	b := breakdown(t, run.WorkflowID, run.RunID, domain.SyncNodesSchemaName)
	require.Len(t, b.StartToClose, 2, "one activity per batch")
	require.Empty(t, breakdown(t, run.WorkflowID, run.RunID, domain.SyncNodeSchemaName).StartToClose)
	recordHistoryTo(t, temporalClient(t), run.WorkflowID, run.RunID, os.Getenv("SYNDB_RECORD_BATCHED_HISTORY"))
}

// waitSchemaVersion waits until the registry holds node at version v.
func waitSchemaVersion(t *testing.T, node string, v int, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		status, raw := apiDoCtx(ctx, t, http.MethodGet, "/v1/federation/clusters", "")
		if status != http.StatusOK {
			return fmt.Errorf("list clusters: %d %s", status, raw)
		}
		var list api.ClusterList
		if err := json.Unmarshal(raw, &list); err != nil {
			return err
		}
		for _, c := range list.Clusters {
			if c.Name == node && c.SchemaVersion == v {
				return nil
			}
		}
		return fmt.Errorf("%s is not at version %d yet", node, v)
	}))
}

// syncAtCleanup brings the fleet to target from a t.Cleanup, whose t.Context
// is already done.
func syncAtCleanup(t *testing.T, target int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	status, raw := apiDoCtx(ctx, t, http.MethodPost, "/v1/federation/schema/sync", fmt.Sprintf(`{"target_version": %d}`, target))
	require.Equal(t, http.StatusAccepted, status, string(raw))
	var started api.SchemaSyncStarted
	require.NoError(t, json.Unmarshal(raw, &started))
	require.NoError(t, temporalClient(t).GetWorkflow(ctx, started.WorkflowID, started.RunID).Get(ctx, nil))
}
