package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/chx"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/nodeagent"
	"github.com/syndb/federation/schemas"
	"github.com/syndb/federation/workflows"
)

// BenchmarkSchemaSyncFanout: a sync of one migration to N nodes (N node
// agents in this process, each with its own database on one ClickHouse
// server), from the POST to the run's end, beside the same migration
// applied to N twin databases, in the same state, directly in one loop.
// The federation's two dev nodes, already at the head, are in every sync
// too. Run it with `go tool task bench`.
func BenchmarkSchemaSyncFanout(b *testing.B) {
	for _, n := range []int{10, 50, 100} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for range b.N {
				benchFanout(b, n)
			}
		})
	}
}

func benchFanout(b *testing.B, n int) {
	b.StopTimer()
	ctx := b.Context()
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(b, err)
	head := len(migs)

	// The fleet's target one below the head, so nodes registering there
	// are not caught up before the timed sync.
	postSync(b, head-1)

	chAddr := fed.Stack.Nodes["lab-a"].Addr()
	nodes := make([]string, n)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("bench-%d-%03d", n, i)
	}
	direct := prepareDatabases(b, chAddr, nodes, "_direct", migs, head-1)
	prepareDatabases(b, chAddr, nodes, "", migs, head-1)

	st, err := store.Open(ctx, fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(b, err)
	defer st.Close()
	stop := startAgents(b, st, chAddr, nodes)
	defer stop()

	b.StartTimer()
	began := time.Now()
	res := postSync(b, head)
	syncTook := time.Since(began)
	b.StopTimer()
	synced := 0
	for _, r := range res.Nodes {
		if r.Status == workflows.NodeSynced {
			synced++
		}
	}
	require.Equal(b, n+2, synced, "every node synced (the bench's and the two dev nodes)")

	began = time.Now()
	for _, conn := range direct {
		_, err := migrate.Apply(ctx, conn, migs, head)
		require.NoError(b, err)
	}
	directTook := time.Since(began)

	b.ReportMetric(syncTook.Seconds(), "sync-s")
	b.ReportMetric(directTook.Seconds(), "direct-s")
	b.ReportMetric(syncTook.Seconds()/directTook.Seconds(), "x-direct")
	b.ReportMetric(float64(n)/syncTook.Seconds(), "nodes/s")
}

// postSync POSTs a sync to target and waits for its result.
func postSync(b *testing.B, target int) workflows.SchemaSyncResult {
	b.Helper()
	status, raw := apiDo(b, http.MethodPost, "/v1/federation/schema/sync", fmt.Sprintf(`{"target_version": %d}`, target))
	require.Equal(b, http.StatusAccepted, status, string(raw))
	var started api.SchemaSyncStarted
	require.NoError(b, json.Unmarshal(raw, &started))
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	var res workflows.SchemaSyncResult
	require.NoError(b, temporalClient(b).GetWorkflow(ctx, started.WorkflowID, started.RunID).Get(ctx, &res))
	return res
}

// prepareDatabases makes a fresh database per node (name + suffix) at
// version v and returns connections to them, closed and dropped at cleanup.
func prepareDatabases(b *testing.B, addr string, nodes []string, suffix string, migs []migrate.Migration, v int) []driver.Conn {
	b.Helper()
	admin, err := chx.Open(b.Context(), config.ClickHouse{Addr: addr, User: "default", Database: "default"})
	require.NoError(b, err)
	b.Cleanup(func() { _ = admin.Close() })
	conns := make([]driver.Conn, 0, len(nodes))
	for _, name := range nodes {
		db := benchDB(name) + suffix
		require.NoError(b, admin.Exec(b.Context(), "DROP DATABASE IF EXISTS "+db))
		conn, err := chx.Open(b.Context(), config.ClickHouse{Addr: addr, User: "default", Database: db})
		require.NoError(b, err)
		_, err = migrate.Apply(b.Context(), conn, migs, v)
		require.NoError(b, err)
		conns = append(conns, conn)
		b.Cleanup(func() {
			_ = conn.Close()
			_ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		})
	}
	return conns
}

func benchDB(node string) string {
	out := []byte("syndb_")
	for _, c := range []byte(node) {
		if c == '-' {
			c = '_'
		}
		out = append(out, c)
	}
	return string(out)
}

// startAgents enrolls the nodes and runs their agents in this process
// until the returned stop, which also revokes them.
func startAgents(b *testing.B, st *store.Store, chAddr string, nodes []string) (stop func()) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	dir := b.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	agents := make([]*nodeagent.Agent, 0, len(nodes))
	stop = func() {
		cancel()
		wg.Wait()
		for _, name := range nodes {
			_, _ = st.RevokeCluster(context.Background(), name)
		}
	}
	for _, name := range nodes {
		e, err := st.CreateCluster(b.Context(), name, time.Hour)
		require.NoError(b, err)
		flightPort, err := devstack.FreePort()
		require.NoError(b, err)
		cfg := config.Node{
			Name: name, Hub: fed.HubAddr, EnrollmentToken: e.Token,
			Listen:     []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
			KeyFile:    filepath.Join(dir, name+".key"),
			FlightAddr: fmt.Sprintf("127.0.0.1:%d", flightPort),
			ClickHouse: config.ClickHouse{Addr: chAddr, User: "default", Database: benchDB(name)},
		}
		cfg.ClickHousePublicAddr = chAddr
		a, err := nodeagent.New(cfg, quiet)
		if err != nil {
			stop()
			require.NoError(b, err)
		}
		agents = append(agents, a)
		wg.Go(func() { _ = a.Run(ctx) })
	}
	deadline := time.After(2 * time.Minute)
	for i, a := range agents {
		select {
		case <-a.Registered():
		case <-deadline:
			stop()
			b.Fatalf("node %s did not register: %v", nodes[i], a.LastError())
		}
	}
	return stop
}
