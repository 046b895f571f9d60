package activities_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/ontology"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/internal/wire"
)

// scriptedNode answers every call with resp, or fails with err.
type scriptedNode struct {
	resp proto.Message
	err  error

	mu   sync.Mutex
	sent []proto.Message
}

func (n *scriptedNode) Call(_ context.Context, _ string, _ []string, _ p2p.Spec, req, resp proto.Message) error {
	n.mu.Lock()
	n.sent = append(n.sent, req)
	n.mu.Unlock()
	if n.err != nil {
		return n.err
	}
	proto.Merge(resp, n.resp)
	return nil
}

// catalogRecorder keeps what the activities write to PostgreSQL.
type catalogRecorder struct {
	mu       sync.Mutex
	cluster  string
	datasets []store.CatalogDataset
	target   int
	versions map[string]int
	sums     map[string]string
}

func (r *catalogRecorder) ReplaceCatalog(_ context.Context, cluster string, ds []store.CatalogDataset, _ time.Time, _ string) (domain.CatalogChange, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cluster, r.datasets = cluster, ds
	return domain.CatalogChange{Datasets: len(ds), Added: len(ds)}, nil
}

func (r *catalogRecorder) SetOntologyTarget(_ context.Context, version int, _, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.target = version
	return nil
}

func (r *catalogRecorder) RecordOntologyVersion(_ context.Context, cluster string, version int, checksum, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.versions == nil {
		r.versions, r.sums = map[string]int{}, map[string]string{}
	}
	r.versions[cluster], r.sums[cluster] = version, checksum
	return nil
}

var labA = domain.NodeRef{Name: "lab-a", PeerID: "peer-a"}

// errorType returns the type of the application error in err's chain.
func errorType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

func TestSyncNodeCatalog(t *testing.T) {
	t.Parallel()
	created := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)
	good := &wire.Dataset{DatasetId: "0b7f1e1c-3c56-4f0e-8d1e-4d3f8f1c2a10", Name: "v1", Owner: "lab", Animal: "mouse",
		BrainRegion: "CA1", GeneticManipulations: []string{"Thy1-GFP"}, Microscopy: "FIB-SEM", PublicationDoi: "10.1/x",
		Notes: "n", CreatedAt: timestamppb.New(created), Tables: []*wire.TableRows{{Table: "neuron", Rows: 5}}}
	node := &scriptedNode{resp: &wire.DatasetCatalogResponse{Node: "lab-a", Datasets: []*wire.Dataset{
		good, {DatasetId: "not-a-uuid", Name: "bad"}, {DatasetId: good.GetDatasetId(), Name: "repeat"},
	}}}
	rec := &catalogRecorder{}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(activities.NewCatalog(rec, node))
	v, err := env.ExecuteActivity(domain.SyncNodeCatalogName, domain.SyncNodeCatalogParams{Node: labA, WorkflowID: "wf"})
	require.NoError(t, err)
	var res domain.SyncNodeCatalogResult
	require.NoError(t, v.Get(&res))
	require.Equal(t, 2, res.Skipped, "a bad ID and a repeat are left out")
	require.Equal(t, 1, res.Added)
	require.True(t, node.sent[0].(*wire.DatasetCatalogRequest).GetWithRowCounts(), "row counts are asked for")
	require.Equal(t, "lab-a", rec.cluster)
	require.Len(t, rec.datasets, 1)
	d := rec.datasets[0]
	require.Equal(t, "v1", d.Name, "the first report of an ID wins")
	require.Equal(t, created, d.CreatedAt)
	require.Equal(t, []string{"Thy1-GFP"}, d.GeneticManipulations)
	require.Equal(t, "10.1/x", d.PublicationDOI)
	require.Equal(t, []store.TableRows{{Table: "neuron", Rows: 5}}, d.Tables)
}

func TestSyncNodeCatalogErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		node     *scriptedNode
		errType  string
		contains string
	}{
		{"unreachable is retried", &scriptedNode{err: p2p.ErrUnreachable}, "", "peer unreachable"},
		{"no schema yet is retried", &scriptedNode{err: p2p.Errorf(p2p.CodeUnavailable, "warehouse has no schema yet")}, "", "no schema"},
		{"refused is not", &scriptedNode{err: p2p.Errorf(p2p.CodeUnauthorized, "not my hub")}, domain.ErrTypeInvalid, "not my hub"},
		{"not found is not", &scriptedNode{err: p2p.Errorf(p2p.CodeNotFound, "no such table")}, domain.ErrTypeInvalid, "dataset catalog of lab-a: remote not_found"},
		{"another node answering is not", &scriptedNode{resp: &wire.DatasetCatalogResponse{Node: "lab-x"}}, domain.ErrTypeInvalid, `as node "lab-x"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(activities.NewCatalog(&catalogRecorder{}, tc.node))
			_, err := env.ExecuteActivity(domain.SyncNodeCatalogName, domain.SyncNodeCatalogParams{Node: labA})
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.contains)
			var appErr *temporal.ApplicationError
			require.ErrorAs(t, err, &appErr)
			require.Equal(t, tc.errType != "", appErr.NonRetryable(), "retried unless refused")
			if tc.errType != "" {
				require.Equal(t, tc.errType, errorType(err))
			}
		})
	}
}

func TestOntologyActivities(t *testing.T) {
	t.Parallel()
	onto, err := ontology.Embedded()
	require.NoError(t, err)
	node := &scriptedNode{resp: &wire.OntologySyncResponse{From: 0, To: int32(onto.Version), TermsWritten: uint32(len(onto.Terms))}}
	rec := &catalogRecorder{}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(activities.NewOntology(rec, node, onto))

	v, err := env.ExecuteActivity(domain.PrepareOntologyName, domain.PrepareOntologyParams{Version: onto.Version, CatchUp: true})
	require.NoError(t, err)
	var prep domain.PrepareOntologyResult
	require.NoError(t, v.Get(&prep))
	require.Equal(t, onto.Checksum, prep.Checksum)
	require.Equal(t, len(onto.Terms), prep.Terms)
	require.Zero(t, rec.target, "a catch-up leaves the fleet's target alone")
	_, err = env.ExecuteActivity(domain.PrepareOntologyName, domain.PrepareOntologyParams{Version: onto.Version})
	require.NoError(t, err)
	require.Equal(t, onto.Version, rec.target)
	_, err = env.ExecuteActivity(domain.PrepareOntologyName, domain.PrepareOntologyParams{Version: onto.Version + 1})
	require.Error(t, err)
	require.Equal(t, domain.ErrTypeInvalid, errorType(err))

	v, err = env.ExecuteActivity(domain.SyncNodeOntologyName, domain.SyncNodeOntologyParams{Node: labA, Version: onto.Version, WorkflowID: "wf"})
	require.NoError(t, err)
	var res domain.SyncNodeOntologyResult
	require.NoError(t, v.Get(&res))
	require.Equal(t, domain.SyncNodeOntologyResult{From: 0, To: onto.Version, TermsWritten: len(onto.Terms)}, res)
	require.Equal(t, onto.Version, rec.versions["lab-a"])
	require.Equal(t, onto.Checksum, rec.sums["lab-a"])
	sent := node.sent[0].(*wire.OntologySyncRequest)
	require.NoError(t, sent.Validate(), "the node is sent a request it accepts")
	require.Len(t, sent.GetTerms(), len(onto.Terms))

	for code, want := range map[string]string{p2p.CodeDrift: domain.ErrTypeDrift, p2p.CodeInvalid: domain.ErrTypeInvalid, p2p.CodeUnavailable: ""} {
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(activities.NewOntology(&catalogRecorder{}, &scriptedNode{err: p2p.Errorf(code, "said no")}, onto))
		_, err := env.ExecuteActivity(domain.SyncNodeOntologyName, domain.SyncNodeOntologyParams{Node: labA, Version: onto.Version})
		require.Error(t, err, code)
		require.Contains(t, err.Error(), "said no", code)
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.Equal(t, want != "", appErr.NonRetryable(), code)
		if want != "" {
			require.Equal(t, want, errorType(err), code)
		}
	}
}
