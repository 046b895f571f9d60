package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/devstack/fleet"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/workflows"
)

// catalogSync POSTs an on-demand catalog sync and waits for its result. A
// run already going (one this test did not start) is waited for and a new
// one started, so the result reflects the nodes as they are now.
func catalogSync(t *testing.T) (api.SyncStarted, workflows.CatalogSyncResult) {
	t.Helper()
	tc := temporalClient(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for {
		status, raw := apiDo(t, http.MethodPost, "/v1/datasets/sync", "")
		require.Equal(t, http.StatusAccepted, status, string(raw))
		var started api.SyncStarted
		require.NoError(t, json.Unmarshal(raw, &started))
		var res workflows.CatalogSyncResult
		require.NoError(t, tc.GetWorkflow(ctx, started.WorkflowID, started.RunID).Get(ctx, &res))
		if !started.Joined {
			return started, res
		}
	}
}

// searchDatasets runs GET /v1/datasets with query and decodes the page.
func searchDatasets(t *testing.T, query url.Values) api.DatasetSearch {
	t.Helper()
	status, raw := apiDo(t, http.MethodGet, "/v1/datasets?"+query.Encode(), "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var page api.DatasetSearch
	require.NoError(t, json.Unmarshal(raw, &page))
	return page
}

// nodeDatasets reads a node's datasets, with their row count in every
// table that has a dataset_id, straight from its ClickHouse, and their
// meshes from the objects the meshes bucket holds under their prefix: what
// the hub's catalog must hold.
func nodeDatasets(t *testing.T, node string) map[string]store.Dataset {
	t.Helper()
	conn := nodeConn(t, node)
	ctx := t.Context()
	rows, err := conn.Query(ctx, `SELECT toString(dataset_id), name, owner, animal, brain_region, genetic_manipulations,
		microscopy, publication_doi, notes FROM datasets`)
	require.NoError(t, err)
	out := map[string]store.Dataset{}
	for rows.Next() {
		d := store.Dataset{Node: node, Tables: []store.TableRows{}}
		require.NoError(t, rows.Scan(&d.DatasetID, &d.Name, &d.Owner, &d.Animal, &d.BrainRegion, &d.GeneticManipulations,
			&d.Microscopy, &d.PublicationDOI, &d.Notes))
		out[d.DatasetID] = d
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	tables, err := conn.Query(ctx, `SELECT table FROM system.columns
		WHERE database = currentDatabase() AND name = 'dataset_id' AND table != 'datasets' ORDER BY table`)
	require.NoError(t, err)
	var names []string
	for tables.Next() {
		var name string
		require.NoError(t, tables.Scan(&name))
		names = append(names, name)
	}
	require.NoError(t, tables.Close())
	require.NotEmpty(t, names)
	for _, table := range names {
		counts, err := conn.Query(ctx, "SELECT toString(dataset_id), count() FROM "+table+" GROUP BY dataset_id")
		require.NoError(t, err)
		for counts.Next() {
			var (
				id string
				n  uint64
			)
			require.NoError(t, counts.Scan(&id, &n))
			if d, ok := out[id]; ok {
				d.Tables = append(d.Tables, store.TableRows{Table: table, Rows: n})
				d.TotalRows += n
				out[id] = d
			}
		}
		require.NoError(t, counts.Close())
	}
	s3 := s3Client(t)
	for id, d := range out {
		for o := range s3.ListObjects(ctx, fleet.MeshesBucket, minio.ListObjectsOptions{Prefix: node + "/" + id + "/", Recursive: true}) {
			require.NoError(t, o.Err)
			d.Meshes++
		}
		out[id] = d
	}
	return out
}

// TestCatalogSyncFillsPostgres: an on-demand catalog sync brings every
// node's datasets, their metadata and their row counts per table into the
// hub's PostgreSQL, as the nodes' own warehouses hold them.
func TestCatalogSyncFillsPostgres(t *testing.T) {
	began := time.Now()
	started, res := catalogSync(t)
	t.Logf("catalog sync of two nodes took %s", time.Since(began))
	require.Equal(t, workflows.CatalogSyncID, started.WorkflowID)
	require.NotEmpty(t, started.RunID)
	require.True(t, strings.HasSuffix(started.StatusURL, "/v1/datasets/sync/"+started.WorkflowID), started.StatusURL)
	require.Contains(t, started.UIURL, "/namespaces/default/workflows/"+started.WorkflowID+"/"+started.RunID)
	require.GreaterOrEqual(t, res.Synced, 2, "%+v", res)
	require.Zero(t, res.Pending+res.Failed, "%+v", res)

	for _, node := range []string{"lab-a", "lab-b"} {
		want := nodeDatasets(t, node)
		require.NotEmpty(t, want, node)
		page := searchDatasets(t, url.Values{"node": {node}, "limit": {"1000"}})
		require.Equal(t, len(want), page.Total, node)
		require.Len(t, page.Datasets, len(want), node)
		for _, got := range page.Datasets {
			w, ok := want[got.DatasetID]
			require.True(t, ok, "%s: dataset %s is not on the node", node, got.DatasetID)
			require.Nil(t, got.Rank, "no rank without q")
			require.False(t, got.UpdatedAt.IsZero())
			require.NotNil(t, got.CreatedAt)
			got.Rank, got.UpdatedAt, got.CreatedAt = nil, time.Time{}, nil
			slices.SortFunc(w.Tables, func(a, b store.TableRows) int { return strings.Compare(a.Table, b.Table) })
			require.Equal(t, w, got, "%s: dataset %s", node, got.DatasetID)
			require.NotEmpty(t, got.Tables, "%s: the seeded datasets have rows", node)
		}
		var n int
		for _, r := range res.Nodes {
			if r.Name == node {
				n = r.Datasets
				require.Equal(t, workflows.NodeSynced, r.Status)
			}
		}
		require.Equal(t, len(want), n, "the run reports %s's datasets", node)

		// One dataset by node and ID.
		var id string
		for id = range want {
			break
		}
		status, raw := apiDo(t, http.MethodGet, "/v1/datasets/"+node+"/"+id, "")
		require.Equal(t, http.StatusOK, status, string(raw))
		var one store.Dataset
		require.NoError(t, json.Unmarshal(raw, &one))
		require.Equal(t, want[id].Name, one.Name)
		require.Equal(t, want[id].TotalRows, one.TotalRows)
	}
	status, _ := apiDo(t, http.MethodGet, "/v1/datasets/lab-a/"+uuid.NewString(), "")
	require.Equal(t, http.StatusNotFound, status)

	// The status URL reports the finished run per node.
	status, raw := apiDo(t, http.MethodGet, "/v1/datasets/sync/"+started.WorkflowID, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var st api.CatalogSyncStatus
	require.NoError(t, json.Unmarshal(raw, &st))
	require.Equal(t, "completed", st.Status)
	require.Equal(t, started.RunID, st.RunID)
	require.Equal(t, res.Synced, st.Synced)
	requireListed(t, temporalClient(t), fmt.Sprintf(`WorkflowId = %q AND SyndbOutcome = "complete"`, started.WorkflowID))
	recordHistoryTo(t, temporalClient(t), started.WorkflowID, started.RunID, os.Getenv("SYNDB_RECORD_CATALOG_HISTORY"))
}

// searchDataset is a dataset TestDatasetSearch adds to a node.
type searchDataset struct {
	node                               string
	id                                 uuid.UUID
	name, animal, region, scope, notes string
}

// TestDatasetSearch: full-text search ranks a dataset whose name matches
// above one that matches only in its notes, filters are exact, junk finds
// nothing, bad paging is refused; datasets a node no longer holds leave the
// catalog at the next sync.
func TestDatasetSearch(t *testing.T) {
	ctx := t.Context()
	added := []searchDataset{
		{node: "lab-a", id: uuid.New(), name: "Purkinje cell arbor, lobule V", animal: "mouse", region: "cerebellar cortex",
			scope: "SBF-SEM", notes: "full arbor traced"},
		{node: "lab-a", id: uuid.New(), name: "Molecular layer volume 3", animal: "mouse", region: "cerebellar cortex",
			scope: "SBF-SEM", notes: "a few Purkinje cell dendrites cross the field"},
		{node: "lab-b", id: uuid.New(), name: "Songbird HVC", animal: "zebra finch", region: "HVC",
			scope: "serial-section TEM", notes: ""},
	}
	removeAdded := func(ctx context.Context) error {
		for _, node := range []string{"lab-a", "lab-b"} {
			var ids []string
			for _, d := range added {
				if d.node == node {
					ids = append(ids, "toUUID('"+d.id.String()+"')")
				}
			}
			conn := nodeConn(t, node)
			if err := conn.Exec(ctx, "ALTER TABLE datasets DELETE WHERE dataset_id IN ("+strings.Join(ids, ", ")+")"); err != nil {
				return err
			}
			// Mutations run in the background: wait until they are done.
			if err := pollUntil(ctx, func() error {
				var n uint64
				if err := conn.QueryRow(ctx, "SELECT count() FROM datasets WHERE dataset_id IN ("+strings.Join(ids, ", ")+")").Scan(&n); err != nil {
					return err
				}
				if n > 0 {
					return fmt.Errorf("%d test datasets left on %s", n, node)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = removeAdded(cctx)
		}
	})
	for _, d := range added {
		conn := nodeConn(t, d.node)
		batch, err := conn.PrepareBatch(ctx, `INSERT INTO datasets (dataset_id, name, owner, animal, brain_region,
			genetic_manipulations, microscopy, publication_doi, notes, created_at)`)
		require.NoError(t, err)
		require.NoError(t, batch.Append(d.id, d.name, "e2e lab", d.animal, d.region, []string{}, d.scope, "", d.notes,
			time.Now().UTC().Truncate(time.Second)))
		require.NoError(t, batch.Send())
	}
	catalogSync(t)

	// The name match ranks above the notes match; the seeded datasets match neither.
	page := searchDatasets(t, url.Values{"q": {"purkinje"}})
	require.Equal(t, 2, page.Total, "%+v", page)
	require.Len(t, page.Datasets, 2)
	require.Equal(t, added[0].id.String(), page.Datasets[0].DatasetID, "the name match comes first")
	require.Equal(t, added[1].id.String(), page.Datasets[1].DatasetID)
	require.Greater(t, *page.Datasets[0].Rank, *page.Datasets[1].Rank)
	require.Equal(t, "lab-a", page.Datasets[0].Node)
	require.Empty(t, page.Datasets[0].Tables, "no compartment rows yet")

	// websearch syntax: a phrase, and a word excluded.
	page = searchDatasets(t, url.Values{"q": {`"purkinje cell" -dendrites`}})
	require.Len(t, page.Datasets, 1)
	require.Equal(t, added[0].id.String(), page.Datasets[0].DatasetID)

	// Exact-match filters, alone and with text.
	page = searchDatasets(t, url.Values{"animal": {"zebra finch"}})
	require.Len(t, page.Datasets, 1)
	require.Equal(t, added[2].id.String(), page.Datasets[0].DatasetID)
	require.Equal(t, "lab-b", page.Datasets[0].Node)
	require.Empty(t, searchDatasets(t, url.Values{"animal": {"zebra"}}).Datasets, "filters are exact")
	page = searchDatasets(t, url.Values{"microscopy": {"SBF-SEM"}, "q": {"purkinje"}, "node": {"lab-a"}})
	require.Len(t, page.Datasets, 2)
	require.Empty(t, searchDatasets(t, url.Values{"q": {"purkinje"}, "node": {"lab-b"}}).Datasets)
	require.Empty(t, searchDatasets(t, url.Values{"q": {"purkinje"}, "animal": {"rat"}}).Datasets)

	// Junk finds nothing; no q lists everything by name, paged.
	page = searchDatasets(t, url.Values{"q": {"xqzvbnwk"}})
	require.Empty(t, page.Datasets)
	require.Zero(t, page.Total)
	all := searchDatasets(t, url.Values{"limit": {"1000"}})
	require.GreaterOrEqual(t, all.Total, 3+4, "two seeded datasets per node and the three added")
	require.True(t, slices.IsSortedFunc(all.Datasets, func(a, b store.Dataset) int { return strings.Compare(a.Name, b.Name) }))
	first := searchDatasets(t, url.Values{"limit": {"2"}})
	require.Len(t, first.Datasets, 2)
	require.Equal(t, all.Total, first.Total)
	require.NotEmpty(t, first.Next)
	next, err := url.Parse(first.Next)
	require.NoError(t, err)
	second := searchDatasets(t, next.Query())
	require.Equal(t, all.Datasets[2].DatasetID, second.Datasets[0].DatasetID)

	// Bad paging is refused.
	for _, q := range []string{"limit=abc", "limit=0", "limit=100000", "offset=-3"} {
		status, raw := apiDo(t, http.MethodGet, "/v1/datasets?"+q, "")
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", q, raw)
		var eb api.ErrorBody
		require.NoError(t, json.Unmarshal(raw, &eb))
		require.Equal(t, "bad_request", eb.Error.Code)
	}

	// The nodes drop the datasets: the next sync removes them from the catalog.
	require.NoError(t, removeAdded(ctx))
	removed = true
	_, res := catalogSync(t)
	removedCount := 0
	for _, n := range res.Nodes {
		removedCount += n.Removed
	}
	require.Equal(t, len(added), removedCount, "%+v", res)
	require.Empty(t, searchDatasets(t, url.Values{"q": {"purkinje"}}).Datasets)
	status, _ := apiDo(t, http.MethodGet, "/v1/datasets/lab-b/"+added[2].id.String(), "")
	require.Equal(t, http.StatusNotFound, status)
}

// TestCatalogSchedule: the worker creates the catalog-sync schedule at boot
// with the configured interval, and a run it starts syncs the fleet.
func TestCatalogSchedule(t *testing.T) {
	tc := temporalClient(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	h := tc.ScheduleClient().GetHandle(ctx, workflows.CatalogScheduleID)
	desc, err := h.Describe(ctx)
	require.NoError(t, err)
	require.Len(t, desc.Schedule.Spec.Intervals, 1)
	require.Equal(t, 15*time.Minute, desc.Schedule.Spec.Intervals[0].Every, "SYNDB_CATALOG_INTERVAL's default")
	action, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	require.True(t, ok, "%T", desc.Schedule.Action)
	require.Equal(t, workflows.CatalogSyncName, action.Workflow)
	require.Equal(t, workflows.TaskQueue, action.TaskQueue)

	before := len(desc.Info.RecentActions)
	require.NoError(t, h.Trigger(ctx, client.ScheduleTriggerOptions{}))
	var id string
	require.NoError(t, pollUntil(ctx, func() error {
		d, err := h.Describe(ctx)
		if err != nil {
			return err
		}
		if len(d.Info.RecentActions) <= before {
			return fmt.Errorf("%d actions, waiting for the triggered one", len(d.Info.RecentActions))
		}
		id = d.Info.RecentActions[len(d.Info.RecentActions)-1].StartWorkflowResult.WorkflowID
		return nil
	}))
	require.True(t, strings.HasPrefix(id, workflows.CatalogScheduledID+"-"), id)
	var res workflows.CatalogSyncResult
	require.NoError(t, tc.GetWorkflow(ctx, id, "").Get(ctx, &res))
	require.GreaterOrEqual(t, res.Synced, 2, "%+v", res)

	// Its status is served like an on-demand run's.
	status, raw := apiDo(t, http.MethodGet, "/v1/datasets/sync/"+url.PathEscape(id), "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var st api.CatalogSyncStatus
	require.NoError(t, json.Unmarshal(raw, &st))
	require.Equal(t, "completed", st.Status)
}

// TestCatalogSyncAfterRegistration: a node that registers gets its own
// catalog sync, with no POST.
func TestCatalogSyncAfterRegistration(t *testing.T) {
	tc := temporalClient(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	id := workflows.NodeCatalogSyncID("lab-a")
	prev, err := tc.DescribeWorkflowExecution(ctx, id, "")
	require.NoError(t, err, "lab-a's catalog was synced when it first registered")
	agent(t, "lab-a").Restart(ctx)
	var res workflows.CatalogSyncResult
	require.NoError(t, pollUntil(ctx, func() error {
		d, err := tc.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return err
		}
		run := d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
		if run == prev.GetWorkflowExecutionInfo().GetExecution().GetRunId() {
			return fmt.Errorf("no new catalog sync of lab-a yet")
		}
		return tc.GetWorkflow(ctx, id, run).Get(ctx, &res)
	}))
	require.Len(t, res.Nodes, 1)
	require.Equal(t, "lab-a", res.Nodes[0].Name)
	require.Equal(t, workflows.NodeSynced, res.Nodes[0].Status, "%+v", res.Nodes[0])
	require.Positive(t, res.Nodes[0].Datasets)
	// Leave lab-a routable for the tests after this one.
	waitHealth(t, "lab-a", health.Healthy, time.Minute)
}
