package e2e

// The ontology tables arrive with a schema migration, so this test syncs
// the fleet's schema first.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/ontology"
	"github.com/syndb/federation/workflows"
)

func startOntologySync(t *testing.T) api.SyncStarted {
	t.Helper()
	status, raw := apiDo(t, http.MethodPost, "/v1/ontology/sync", "")
	require.Equal(t, http.StatusAccepted, status, string(raw))
	var started api.SyncStarted
	require.NoError(t, json.Unmarshal(raw, &started))
	return started
}

func ontologyStatus(t *testing.T) api.OntologyStatus {
	t.Helper()
	status, raw := apiDo(t, http.MethodGet, "/v1/ontology", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var out api.OntologyStatus
	require.NoError(t, json.Unmarshal(raw, &out))
	return out
}

func ontologyNode(st api.OntologyStatus, name string) api.OntologyNode {
	for _, n := range st.Nodes {
		if n.Cluster == name {
			return n
		}
	}
	return api.OntologyNode{}
}

func ontologyNodeResult(res workflows.OntologySyncResult, name string) workflows.NodeOntologyResult {
	for _, n := range res.Nodes {
		if n.Name == name {
			return n
		}
	}
	return workflows.NodeOntologyResult{}
}

// requireNodeOntology checks a node's own ontology tables hold version v of
// onto exactly once.
func requireNodeOntology(t *testing.T, node string, onto *ontology.Ontology) {
	t.Helper()
	conn := nodeConn(t, node)
	ctx := t.Context()
	var terms uint64
	require.NoError(t, conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM ontology_terms WHERE version = %d", onto.Version)).Scan(&terms))
	require.Equal(t, uint64(len(onto.Terms)), terms, "%s holds every term once", node)
	var (
		ledger   uint64
		checksum string
	)
	require.NoError(t, conn.QueryRow(ctx, fmt.Sprintf("SELECT count(), any(checksum) FROM ontology_versions WHERE version = %d", onto.Version)).
		Scan(&ledger, &checksum))
	require.Equal(t, uint64(1), ledger, "%s records the version once", node)
	require.Equal(t, onto.Checksum, checksum, node)
	var label, parent string
	require.NoError(t, conn.QueryRow(ctx, fmt.Sprintf(
		"SELECT label, parent_id FROM ontology_terms WHERE version = %d AND kind = 'compartment' AND term_id = 'GO:0008021'", onto.Version)).
		Scan(&label, &parent))
	require.Equal(t, "synaptic vesicle", label, node)
	require.Equal(t, "GO:0098793", parent, node)
}

// TestOntologySync: POST /v1/ontology/sync pushes the hub's ontology to
// every node; a node stopped during the sync is reported pending, and is
// caught up after it restarts, with no other POST. A sync run again writes
// nothing twice.
func TestOntologySync(t *testing.T) {
	onto, err := ontology.Embedded()
	require.NoError(t, err)
	syncFleet(t) // the ontology tables come with the schema
	tc := temporalClient(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	// lab-b is down when the sync runs.
	labB := agent(t, "lab-b")
	labB.Stop(ctx)
	began := time.Now()
	started := startOntologySync(t)
	require.Equal(t, workflows.OntologySyncID(onto.Version), started.WorkflowID)
	require.Equal(t, onto.Version, started.Version)
	require.False(t, started.Joined)
	require.True(t, strings.HasSuffix(started.StatusURL, "/v1/ontology/sync/"+started.WorkflowID), started.StatusURL)
	require.Contains(t, started.UIURL, "/namespaces/default/workflows/"+started.WorkflowID+"/"+started.RunID)
	// lab-b's retries keep the run going for seconds: a second POST joins it.
	again := startOntologySync(t)
	require.True(t, again.Joined, "%+v", again)
	require.Equal(t, started.RunID, again.RunID)

	var res workflows.OntologySyncResult
	require.NoError(t, tc.GetWorkflow(ctx, started.WorkflowID, started.RunID).Get(ctx, &res),
		"a node that cannot be reached must not fail the run")
	t.Logf("ontology sync with lab-b down finished in %s", time.Since(began))
	require.Equal(t, onto.Checksum, res.Checksum)
	require.Equal(t, len(onto.Terms), res.Terms)
	a, b := ontologyNodeResult(res, "lab-a"), ontologyNodeResult(res, "lab-b")
	require.Equal(t, workflows.NodeSynced, a.Status, "%+v", a)
	require.Equal(t, onto.Version, a.To)
	require.Equal(t, len(onto.Terms), a.TermsWritten)
	require.Equal(t, workflows.NodePending, b.Status, "%+v", b)
	require.NotEmpty(t, b.Error)
	requireListed(t, tc, fmt.Sprintf(`WorkflowId = %q AND SyndbNodeCount = 2 AND SyndbOutcome = "partial"`, started.WorkflowID))
	requireNodeOntology(t, "lab-a", onto)

	st := ontologyStatus(t)
	require.Equal(t, onto.Version, st.Version)
	require.Equal(t, onto.Version, st.Target.Version)
	require.Equal(t, started.WorkflowID, st.Target.WorkflowID)
	require.Equal(t, "synced", ontologyNode(st, "lab-a").State)
	require.Equal(t, onto.Version, ontologyNode(st, "lab-a").Version)
	require.Equal(t, "behind", ontologyNode(st, "lab-b").State)

	status, raw := apiDo(t, http.MethodGet, "/v1/ontology/sync/"+started.WorkflowID, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var sst api.OntologySyncStatus
	require.NoError(t, json.Unmarshal(raw, &sst))
	require.Equal(t, "completed", sst.Status)
	require.Equal(t, 1, sst.Synced)
	require.Equal(t, 1, sst.Pending)
	recordHistoryTo(t, tc, started.WorkflowID, started.RunID, os.Getenv("SYNDB_RECORD_ONTOLOGY_HISTORY"))

	// lab-b comes back: it registers, and is caught up with no other POST.
	labB.Start(ctx)
	catchUp := workflows.OntologyCatchUpID("lab-b", onto.Version)
	var cres workflows.OntologySyncResult
	require.NoError(t, pollUntil(ctx, func() error {
		return tc.GetWorkflow(ctx, catchUp, "").Get(ctx, &cres)
	}), "lab-b's ontology was not caught up after it registered")
	t.Logf("lab-b's ontology caught up %s after the sync began", time.Since(began))
	require.Len(t, cres.Nodes, 1)
	require.Equal(t, workflows.NodeSynced, cres.Nodes[0].Status, "%+v", cres.Nodes[0])
	require.Equal(t, len(onto.Terms), cres.Nodes[0].TermsWritten)
	requireNodeOntology(t, "lab-b", onto)
	st = ontologyStatus(t)
	for _, n := range []string{"lab-a", "lab-b"} {
		require.Equal(t, "synced", ontologyNode(st, n).State, n)
	}
	status, raw = apiDo(t, http.MethodGet, "/v1/ontology/sync/"+catchUp, "")
	require.Equal(t, http.StatusOK, status, string(raw))

	// Again: a new run, and no node writes its terms twice.
	rerun := startOntologySync(t)
	require.False(t, rerun.Joined)
	require.NotEqual(t, started.RunID, rerun.RunID)
	var res2 workflows.OntologySyncResult
	require.NoError(t, tc.GetWorkflow(ctx, rerun.WorkflowID, rerun.RunID).Get(ctx, &res2))
	require.Equal(t, 2, res2.Synced, "%+v", res2)
	for _, n := range res2.Nodes {
		require.Zero(t, n.TermsWritten, n.Name)
	}
	for _, n := range []string{"lab-a", "lab-b"} {
		requireNodeOntology(t, n, onto)
	}
	// Leave lab-b routable for the tests after this one.
	waitHealth(t, "lab-b", health.Healthy, time.Minute)
}
