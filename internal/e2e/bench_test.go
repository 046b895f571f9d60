package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/fedsql"
	"github.com/syndb/federation/internal/health"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/clickhouse"
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
// too. Up to 100 nodes the figures are the medians of three rounds (the
// last round's history breakdown): one round's direct loop alone varied
// fourfold from run to run with what ClickHouse was doing in the
// background. Run it with `go tool task bench`.
func BenchmarkSchemaSyncFanout(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			rounds := 3
			if n > 100 {
				rounds = 1
			}
			for range b.N {
				var syncs, directs []time.Duration
				for range rounds {
					s, d := benchFanout(b, n)
					syncs, directs = append(syncs, s), append(directs, d)
				}
				syncTook, directTook := median(syncs), median(directs)
				b.ReportMetric(syncTook.Seconds(), "sync-s")
				b.ReportMetric(directTook.Seconds(), "direct-s")
				b.ReportMetric(syncTook.Seconds()/directTook.Seconds(), "x-direct")
				b.ReportMetric(float64(n)/syncTook.Seconds(), "nodes/s")
			}
		})
	}
}

// benchFanout runs one round of BenchmarkSchemaSyncFanout: it returns how
// long the sync took and how long the direct loop.
func benchFanout(b *testing.B, n int) (syncTook, directTook time.Duration) {
	b.StopTimer()
	ctx := b.Context()
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(b, err)
	head := len(migs)

	// The fleet's target one below the head, so nodes registering there
	// are not caught up before the timed sync.
	postSync(b, head-1, 5*time.Minute)

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
	// What registration starts (each node's catalog pull and catch-up)
	// finishes before the timed sync, which measures the sync alone.
	settled := time.Now()
	waitNoRunsBut(b, workflows.HealthMonitorID)
	b.ReportMetric(time.Since(settled).Seconds(), "registration-settle-s")

	// The profile covers the sync's busy first seconds.
	waitProfile := profileWorker(b, fmt.Sprintf("schema-sync-%d", n), max(2, n/50))
	b.StartTimer()
	began := time.Now()
	res, run := postSyncRun(b, head, 10*time.Minute)
	syncTook = time.Since(began)
	b.StopTimer()
	waitProfile()
	breakdown(b, run.WorkflowID, run.RunID, domain.SyncNodeSchemaName, domain.SyncNodesSchemaName).report(b)
	synced := 0
	for _, r := range res.Nodes {
		if r.Status == workflows.NodeSynced {
			synced++
		}
	}
	require.Equal(b, n+2, synced, "every node synced (the bench's and the two dev nodes)")

	began = time.Now()
	for _, db := range direct {
		applyTo(b, chAddr, db, migs, head)
	}
	return syncTook, time.Since(began)
}

// prepareDatabases makes a fresh database per node (name + suffix) at
// version v, dropped at cleanup, and returns their names. It keeps no
// connection open: a thousand nodes' databases share one server.
func prepareDatabases(b *testing.B, addr string, nodes []string, suffix string, migs []migrate.Migration, v int) []string {
	b.Helper()
	admin, err := clickhouse.Open(b.Context(), config.ClickHouse{Addr: addr, User: "default", Database: "default"})
	require.NoError(b, err)
	b.Cleanup(func() { _ = admin.Close() })
	dbs := make([]string, 0, len(nodes))
	for _, name := range nodes {
		db := benchDB(name) + suffix
		require.NoError(b, admin.Exec(b.Context(), "DROP DATABASE IF EXISTS "+db))
		applyTo(b, addr, db, migs, v)
		dbs = append(dbs, db)
		b.Cleanup(func() { _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	}
	return dbs
}

// applyTo connects to database db on addr (creating it), applies migs up
// to v and disconnects, as a script looping over nodes would.
func applyTo(b *testing.B, addr, db string, migs []migrate.Migration, v int) {
	b.Helper()
	conn, err := clickhouse.Open(b.Context(), config.ClickHouse{Addr: addr, User: "default", Database: db})
	require.NoError(b, err)
	defer func() { _ = conn.Close() }()
	_, err = migrate.Apply(b.Context(), conn, migs, v)
	require.NoError(b, err)
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
		e, err := st.CreateCluster(b.Context(), name, time.Hour, "")
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
	deadline := time.After(2*time.Minute + time.Duration(len(nodes))*200*time.Millisecond)
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

// BenchmarkQuery: /v1/query against the node's own ClickHouse. "aggregate":
// a small aggregate's latency through the API (routing, remote() on the hub
// ClickHouse, JSON) beside the same query sent straight to the node.
// "stream": 10 M rows streamed through the API, with the API process's peak
// memory while it streams (it must not grow with the result).
func BenchmarkQuery(b *testing.B) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(b, n, health.Healthy, time.Minute)
	}
	b.Run("aggregate", func(b *testing.B) {
		const sql = "SELECT count() AS n, avg(voxel_volume) AS v FROM neuron"
		direct := nodeConn(b, "lab-a")
		// 50 samples per iteration, after a warm-up, for stable medians.
		_, _ = apiDo(b, http.MethodPost, "/v1/query", fmt.Sprintf(`{"sql": %q, "nodes": ["lab-a"]}`, sql))
		viaAPI := make([]time.Duration, 0, 50*b.N)
		straight := make([]time.Duration, 0, 50*b.N)
		for range 50 * b.N {
			began := time.Now()
			status, raw := apiDo(b, http.MethodPost, "/v1/query", fmt.Sprintf(`{"sql": %q, "nodes": ["lab-a"]}`, sql))
			viaAPI = append(viaAPI, time.Since(began))
			require.Equal(b, http.StatusOK, status, string(raw))
			began = time.Now()
			var n uint64
			var v float64
			require.NoError(b, direct.QueryRow(b.Context(), sql).Scan(&n, &v))
			straight = append(straight, time.Since(began))
		}
		// Where the time goes: the compiled remote() query straight on the
		// hub's ClickHouse (the federation's one extra hop), without the API.
		migs, err := schemas.ClickHouseMigrations()
		require.NoError(b, err)
		parsed, err := fedsql.Parse(sql, fedsql.NewCatalog(migrate.ColumnVersions(migs), migrate.ColumnOrder(migs)), fedsql.Options{MaxRows: 1000})
		require.NoError(b, err)
		compiled, err := parsed.Compile([]fedsql.Target{{Name: "lab-a", Addr: fed.Stack.Nodes["lab-a"].Addr(), Database: "syndb", User: "default"}})
		require.NoError(b, err)
		hub, err := clickhouse.Open(b.Context(), config.ClickHouse{Addr: fed.Stack.Hub.Addr(), User: "default", Database: "syndb"})
		require.NoError(b, err)
		defer func() { _ = hub.Close() }()
		viaHub := make([]time.Duration, 0, 50*b.N)
		for range 50 * b.N {
			began := time.Now()
			var n uint64
			var v float64
			require.NoError(b, hub.QueryRow(b.Context(), compiled).Scan(&n, &v))
			viaHub = append(viaHub, time.Since(began))
		}
		api, node, hubOnly := median(viaAPI), median(straight), median(viaHub)
		b.ReportMetric(float64(api.Microseconds())/1000, "api-p50-ms")
		b.ReportMetric(float64(hubOnly.Microseconds())/1000, "hub-remote-p50-ms")
		b.ReportMetric(float64(node.Microseconds())/1000, "node-p50-ms")
		b.ReportMetric(api.Seconds()/node.Seconds(), "x-node")
	})
	b.Run("stream", func(b *testing.B) {
		const rows = 10_000_000
		b.StopTimer()
		restartAPI(b, map[string]string{"SYNDB_QUERY_MAX_ROWS": "50000000", "SYNDB_QUERY_TIMEOUT": "10m"})
		addVesicles(b, rows)
		pid, ok := fed.HubPid("api")
		require.True(b, ok)
		for range b.N {
			// Reset the peak RSS, then stream.
			require.NoError(b, os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0))
			before := procStatusKB(b, pid, "VmRSS")
			b.StartTimer()
			began := time.Now()
			req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, fed.APIURL+"/v1/query",
				strings.NewReader(fmt.Sprintf(`{"sql": "SELECT voxel_volume, centroid_x FROM vesicle WHERE neurotransmitter = 'glutamate' LIMIT %d", "nodes": ["lab-a"], "format": "csv"}`, rows)))
			require.NoError(b, err)
			req.Header.Set("Authorization", "Bearer "+fed.APIKey)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(b, err)
			bytes, err := io.Copy(io.Discard, resp.Body)
			require.NoError(b, err)
			_ = resp.Body.Close()
			took := time.Since(began)
			b.StopTimer()
			require.Equal(b, fmt.Sprint(rows), resp.Trailer.Get("X-Syndb-Rows"))
			peak := procStatusKB(b, pid, "VmHWM")
			b.ReportMetric(rows/took.Seconds(), "rows/s")
			b.ReportMetric(float64(bytes)/took.Seconds()/1e6, "MB/s")
			b.ReportMetric(float64(before)/1024, "rss-before-MB")
			b.ReportMetric(float64(peak)/1024, "rss-peak-MB")
		}
	})
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// procStatusKB reads a kB field of /proc/pid/status.
func procStatusKB(b *testing.B, pid int, field string) int64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(b, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			var kb int64
			_, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			require.NoError(b, err)
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// restartAPI restarts `syndb api` with extra settings and waits until ready.
func restartAPI(b *testing.B, env map[string]string) {
	b.Helper()
	require.NoError(b, fed.StopHub(b.Context(), "api", false))
	for k, v := range env {
		fed.Env[k] = v
	}
	require.NoError(b, fed.StartHub(b.Context(), "api"))
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	require.NoError(b, pollUntil(ctx, func() error { return apiReady(ctx, fed.APIURL) }))
}

// BenchmarkEtl: ETL jobs of a 200 k-row and a 2 M-row CSV (13 and 130 MB)
// into a node, with the worker's peak memory while it validates and loads
// the file (streamed both times: it must not grow with the file).
func BenchmarkEtl(b *testing.B) {
	waitHealth(b, "lab-a", health.Healthy, time.Minute)
	for _, rows := range []int{200_000, 2_000_000} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) { benchEtl(b, rows) })
	}
}

func benchEtl(b *testing.B, rows int) {
	var csv bytes.Buffer
	csv.WriteString("cid,voxel_volume,neuron_type,terminal_count\n")
	for i := range rows {
		fmt.Fprintf(&csv, "%s,%g,pyramidal,%d\n", uuid.New(), float64(i)/7, i%13)
	}
	size := int64(csv.Len())
	pid, ok := fed.HubPid("worker")
	require.True(b, ok)
	for range b.N {
		b.StopTimer()
		object := upload(b, "big.csv", csv.Bytes())
		require.NoError(b, os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0))
		before := procStatusKB(b, pid, "VmRSS")
		dataset := uuid.New()
		spec := fmt.Sprintf(`{"object": %q, "table": "neuron", "node": "lab-a", "dataset": {"dataset_id": %q, "name": "bench"}}`, object, dataset)
		b.StartTimer()
		began := time.Now()
		status, raw := apiDo(b, http.MethodPost, "/v1/jobs", `{"kind": "etl", "spec": `+spec+`}`)
		require.Equal(b, http.StatusAccepted, status, string(raw))
		var st api.JobStarted
		require.NoError(b, json.Unmarshal(raw, &st))
		var res domain.EtlResult
		require.NoError(b, temporalClient(b).GetWorkflow(b.Context(), st.WorkflowID, "").Get(b.Context(), &res))
		took := time.Since(began)
		b.StopTimer()
		require.Equal(b, int64(rows), res.Loaded.Rows, "%+v", res)
		b.ReportMetric(float64(size)/1e6, "file-MB")
		b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
		b.ReportMetric(float64(before)/1024, "worker-rss-before-MB")
		b.ReportMetric(float64(procStatusKB(b, pid, "VmHWM"))/1024, "worker-rss-peak-MB")
	}
}
