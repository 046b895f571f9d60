package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/internal/wire"
	"github.com/syndb/federation/workflows"
)

// BenchmarkHealthSweep: one health sweep over N nodes (cheap in-process
// libp2p hosts answering HealthPing), as the running monitor does it (sweep
// activity, breaker, record activity), measured from the run's own history:
// the sweep's duration and its history events. Beside it, the same hosts
// pinged directly from one host with the same concurrency bound.
func BenchmarkHealthSweep(b *testing.B) {
	for _, n := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for range b.N {
				benchSweep(b, n)
			}
		})
	}
}

func benchSweep(b *testing.B, n int) {
	b.StopTimer()
	ctx := b.Context()
	st, err := store.Open(ctx, fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(b, err)
	defer st.Close()
	// The hosts answer as nodes synced to the fleet's target do: a node
	// behind it is Degraded, never Healthy, and an earlier benchmark's
	// schema sync may have set it.
	target, err := st.SchemaTarget(ctx)
	require.NoError(b, err)
	names := make([]string, n)
	hosts := make([]host.Host, n)
	log := slog.New(slog.DiscardHandler)
	for i := range names {
		names[i] = fmt.Sprintf("sweep-%d-%04d", n, i)
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		require.NoError(b, err)
		h, err := p2p.NewHost(p2p.HostConfig{Key: key, Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})
		require.NoError(b, err)
		hosts[i] = h
		p2p.Handle(h, p2p.HealthPing, log, nil, func(_ context.Context, _ peer.ID, req *wire.HealthPingRequest) (*wire.HealthPingResponse, error) {
			return &wire.HealthPingResponse{Nonce: req.GetNonce(), ClickhouseOk: true, SchemaVersion: int32(target)}, nil
		})
		e, err := st.CreateCluster(ctx, names[i], time.Hour, "")
		require.NoError(b, err)
		addrs := make([]string, 0, 1)
		for _, a := range h.Addrs() {
			addrs = append(addrs, a.String())
		}
		_, err = st.Register(ctx, store.Registration{Name: names[i], PeerID: h.ID().String(), Addrs: addrs, Token: e.Token,
			ClickHouseDatabase: domain.DefaultClickHouseDatabase})
		require.NoError(b, err)
	}
	defer func() {
		for i, h := range hosts {
			_ = h.Close()
			_, _ = st.RevokeCluster(context.Background(), names[i])
		}
	}()

	// Wait for a sweep that saw every new node, then measure the next one.
	tc := temporalClient(b)
	waitSweepCovering(b, n)
	b.StartTimer()
	took, events := lastSweep(b, tc)
	b.StopTimer()

	// The baseline: the same pings, straight from one host.
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(b, err)
	client, err := p2p.NewHost(p2p.HostConfig{Key: key, Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, MaxConns: 4096})
	require.NoError(b, err)
	defer func() { _ = client.Close() }()
	for _, h := range hosts {
		client.Peerstore().AddAddrs(h.ID(), h.Addrs(), time.Hour)
	}
	ping := func() time.Duration {
		began := time.Now()
		sem := make(chan struct{}, 64)
		var wg sync.WaitGroup
		for _, h := range hosts {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				var resp wire.HealthPingResponse
				err := p2p.Call(ctx, client, h.ID(), p2p.HealthPing, &wire.HealthPingRequest{Nonce: 1}, &resp)
				if err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		return time.Since(began)
	}
	ping() // connect first, as the hub's host already is
	direct := ping()

	b.ReportMetric(took.Seconds()*1000, "sweep-ms")
	b.ReportMetric(direct.Seconds()*1000, "direct-ms")
	b.ReportMetric(float64(events), "events/sweep")
}

// waitSweepCovering waits until the monitor's table holds at least n
// sweep-* nodes that are Healthy.
func waitSweepCovering(b *testing.B, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), 3*time.Minute)
	defer cancel()
	tc := temporalClient(b)
	require.NoError(b, pollUntil(ctx, func() error {
		v, err := tc.QueryWorkflow(ctx, workflows.HealthMonitorID, "", workflows.HealthQuery)
		if err != nil {
			return err
		}
		var tab workflows.HealthTable
		if err := v.Get(&tab); err != nil {
			return err
		}
		healthy := 0
		for _, nh := range tab.Nodes {
			if strings.HasPrefix(nh.Name, "sweep-") && nh.State == health.Healthy {
				healthy++
			}
		}
		if healthy < n {
			return fmt.Errorf("%d of %d sweep nodes healthy", healthy, n)
		}
		return nil
	}))
}

// lastSweep reads the monitor's history: the duration of its latest
// complete sweep (HealthSweep scheduled to RecordHealth completed) and the
// events between the last two HealthSweep schedules.
func lastSweep(b *testing.B, tc client.Client) (time.Duration, int) {
	b.Helper()
	// A run that just continued as new has too few sweeps yet: wait.
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	var took time.Duration
	var events int
	require.NoError(b, pollUntil(ctx, func() error {
		var err error
		took, events, err = readLastSweep(ctx, tc)
		return err
	}))
	return took, events
}

func readLastSweep(ctx context.Context, tc client.Client) (time.Duration, int, error) {
	it := tc.GetWorkflowHistory(ctx, workflows.HealthMonitorID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var evs []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return 0, 0, err
		}
		evs = append(evs, ev)
	}
	scheduled := map[int64]string{} // event ID -> activity type
	var sweeps []int                // indexes of HealthSweep schedules
	var lastRecordDone int
	for i, ev := range evs {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
			if a.GetActivityType().GetName() == domain.HealthSweepName {
				sweeps = append(sweeps, i)
			}
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] == domain.RecordHealthName {
			lastRecordDone = i
		}
	}
	// The newest sweep that has completed: the last schedule before the last record.
	k := len(sweeps) - 1
	for k > 0 && sweeps[k] > lastRecordDone {
		k--
	}
	if k < 1 {
		return 0, 0, fmt.Errorf("the monitor's current run has %d sweeps", len(sweeps))
	}
	took := evs[lastRecordDone].GetEventTime().AsTime().Sub(evs[sweeps[k]].GetEventTime().AsTime())
	return took, sweeps[k] - sweeps[k-1], nil
}
