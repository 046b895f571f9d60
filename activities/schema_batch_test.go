package activities_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/proto"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// fleetNodes answers SchemaSync per peer: "ok" syncs to the target, "down"
// cannot be reached, "flaky" fails its first try, "drift" reports drift.
type fleetNodes struct {
	behavior map[string]string // peer ID -> behaviour

	mu    sync.Mutex
	tries map[string]int
}

func (f *fleetNodes) Call(_ context.Context, peerID string, _ []string, _ p2p.Spec, req, resp proto.Message) error {
	f.mu.Lock()
	f.tries[peerID]++
	n := f.tries[peerID]
	f.mu.Unlock()
	switch f.behavior[peerID] {
	case "down":
		return errors.New("dial backoff: no route to " + peerID)
	case "flaky":
		if n == 1 {
			return errors.New("stream reset")
		}
	case "drift":
		return &p2p.RemoteError{Code: p2p.CodeDrift, Message: "schema drift at version 1: checksum differs"}
	}
	target := req.(*wire.SchemaSyncRequest).GetTarget()
	proto.Merge(resp, &wire.SchemaSyncResponse{From: 1, To: target})
	return nil
}

// versionRecorder keeps the versions and drifts the activities record.
type versionRecorder struct {
	mu       sync.Mutex
	versions map[string]int
	drifts   map[string]string
}

func (r *versionRecorder) Clusters(context.Context, bool) ([]domain.Cluster, error) { return nil, nil }

func (r *versionRecorder) RecordSchemaVersion(_ context.Context, cluster string, version int, _ []domain.AppliedVersion, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.versions[cluster] = version
	return nil
}

func (r *versionRecorder) RecordSchemaDrift(_ context.Context, cluster string, _ int, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drifts[cluster] = reason
	return nil
}

func (r *versionRecorder) SetSchemaTarget(context.Context, int, string) error { return nil }

func (r *versionRecorder) WithAdvisoryLock(ctx context.Context, _ int64, fn func(context.Context) error) error {
	return fn(ctx)
}

func TestSyncNodesSchemaGivesEachNodeItsOwnOutcome(t *testing.T) {
	t.Parallel()
	nodes := &fleetNodes{tries: map[string]int{}, behavior: map[string]string{
		"p-ok": "ok", "p-down": "down", "p-flaky": "flaky", "p-drift": "drift"}}
	rec := &versionRecorder{versions: map[string]int{}, drifts: map[string]string{}}
	migs := []migrate.Migration{{Version: 1, Name: "a"}, {Version: 2, Name: "b"}}
	a := activities.NewSchema(rec, nil, nodes, migs, slog.New(slog.DiscardHandler))

	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a.SyncNodesSchema)
	p := domain.SyncNodesParams{Target: 2, WorkflowID: "wf", Attempts: 2, TryTimeout: time.Second}
	for _, n := range []string{"ok", "down", "flaky", "drift"} {
		p.Nodes = append(p.Nodes, domain.NodeRef{Name: "lab-" + n, PeerID: "p-" + n})
	}
	v, err := env.ExecuteActivity(a.SyncNodesSchema, p)
	require.NoError(t, err, "nodes that fail do not fail the batch")
	var res domain.SyncNodesResult
	require.NoError(t, v.Get(&res))
	require.Len(t, res.Nodes, 4)
	got := map[string]domain.NodeSyncOutcome{}
	for i, o := range res.Nodes {
		require.Equal(t, p.Nodes[i].Name, o.Name, "outcomes in the order of the nodes")
		got[o.Name] = o
	}
	require.True(t, got["lab-ok"].Synced())
	require.Equal(t, 2, got["lab-ok"].Result.To)
	require.Equal(t, 1, got["lab-ok"].Attempts)

	require.False(t, got["lab-down"].Synced())
	require.Empty(t, got["lab-down"].ErrType, "unreachable: pending, caught up later")
	require.Contains(t, got["lab-down"].Error, "no route")
	require.Equal(t, 2, got["lab-down"].Attempts, "tried as often as Attempts says")

	require.True(t, got["lab-flaky"].Synced(), "a failed try is tried again")
	require.Equal(t, 2, got["lab-flaky"].Attempts)

	require.Equal(t, domain.ErrTypeDrift, got["lab-drift"].ErrType)
	require.Equal(t, 1, got["lab-drift"].Attempts, "drift is not tried again")

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Equal(t, map[string]int{"lab-ok": 2, "lab-flaky": 2}, rec.versions)
	require.Contains(t, rec.drifts, "lab-drift")
	nodes.mu.Lock()
	defer nodes.mu.Unlock()
	require.Equal(t, map[string]int{"p-ok": 1, "p-down": 2, "p-flaky": 2, "p-drift": 1}, nodes.tries)
}

func TestSyncNodesSchemaResumesFromItsHeartbeat(t *testing.T) {
	t.Parallel()
	nodes := &fleetNodes{tries: map[string]int{}, behavior: map[string]string{"p-a": "ok", "p-b": "ok"}}
	rec := &versionRecorder{versions: map[string]int{}, drifts: map[string]string{}}
	a := activities.NewSchema(rec, nil, nodes, []migrate.Migration{{Version: 1}, {Version: 2}}, slog.New(slog.DiscardHandler))
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a.SyncNodesSchema)
	// A previous attempt of the batch synced lab-a before its worker died.
	done := domain.NodeSyncOutcome{Name: "lab-a", Result: domain.SyncNodeResult{From: 1, To: 2}, Attempts: 1}
	env.SetHeartbeatDetails([]domain.NodeSyncOutcome{done})
	v, err := env.ExecuteActivity(a.SyncNodesSchema, domain.SyncNodesParams{Target: 2, Nodes: []domain.NodeRef{
		{Name: "lab-a", PeerID: "p-a"}, {Name: "lab-b", PeerID: "p-b"}}})
	require.NoError(t, err)
	var res domain.SyncNodesResult
	require.NoError(t, v.Get(&res))
	require.Equal(t, done, res.Nodes[0], "lab-a's outcome comes from the heartbeat")
	require.True(t, res.Nodes[1].Synced())
	nodes.mu.Lock()
	defer nodes.mu.Unlock()
	require.Equal(t, map[string]int{"p-b": 1}, nodes.tries, "lab-a is not synced again")
}

func TestSyncNodesSchemaRefusesABadTarget(t *testing.T) {
	t.Parallel()
	a := activities.NewSchema(&versionRecorder{}, nil, &fleetNodes{}, []migrate.Migration{{Version: 1}}, slog.New(slog.DiscardHandler))
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a.SyncNodesSchema)
	_, err := env.ExecuteActivity(a.SyncNodesSchema, domain.SyncNodesParams{Target: 5})
	require.ErrorContains(t, err, "outside 1..1")
}

// hangingNodes answers SchemaSync for "p-ok" and holds every other call
// until it is cancelled.
type hangingNodes struct{}

func (hangingNodes) Call(ctx context.Context, peerID string, _ []string, _ p2p.Spec, req, resp proto.Message) error {
	if peerID != "p-ok" {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return errors.New("the test did not cancel the batch")
		}
	}
	proto.Merge(resp, &wire.SchemaSyncResponse{From: 1, To: req.(*wire.SchemaSyncRequest).GetTarget()})
	return nil
}

// TestSyncNodesSchemaCutShortReportsWhatFinished: a batch cut short (its
// worker stops) before every node finished fails, and its error carries
// the outcomes of the nodes that did finish, not of those cut short. (A
// batch that times out is reported by Temporal with its last heartbeat's
// details instead, which hold the same outcomes.)
func TestSyncNodesSchemaCutShortReportsWhatFinished(t *testing.T) {
	t.Parallel()
	rec := &versionRecorder{versions: map[string]int{}, drifts: map[string]string{}}
	a := activities.NewSchema(rec, nil, hangingNodes{}, []migrate.Migration{{Version: 1}, {Version: 2}}, slog.New(slog.DiscardHandler))
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a.SyncNodesSchema)
	// The batch's context ends a second in, as when its worker stops.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := time.AfterFunc(time.Second, cancel)
	defer stop.Stop()
	env.SetWorkerOptions(worker.Options{BackgroundActivityContext: ctx})
	_, err := env.ExecuteActivity(a.SyncNodesSchema, domain.SyncNodesParams{Target: 2, Nodes: []domain.NodeRef{
		{Name: "lab-ok", PeerID: "p-ok"}, {Name: "lab-hang", PeerID: "p-hang"}}})
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, domain.ErrTypeBatchInterrupted, appErr.Type())
	var done []domain.NodeSyncOutcome
	require.NoError(t, appErr.Details(&done))
	require.Len(t, done, 1)
	require.Equal(t, "lab-ok", done[0].Name)
	require.True(t, done[0].Synced())
}
