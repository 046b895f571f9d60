package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/workers"
	"github.com/syndb/federation/workflows"
)

// hubGoroutines counts the goroutines running the hub's own code (workers)
// or its libp2p plumbing (internal/p2p).
func hubGoroutines() []string {
	buf := make([]byte, 1<<24)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "syndb/federation/workers.") || strings.Contains(g, "syndb/federation/internal/p2p.") {
			out = append(out, g)
		}
	}
	return out
}

// TestLifecycleHubShutdownWaits runs a second hub worker in this process, on
// the federation's PostgreSQL, ClickHouse, MinIO and Temporal but with its
// own database and Temporal namespace (so it touches nothing the federation
// uses): Run starts it (its libp2p port is bound, its health monitor runs),
// and Shutdown returns only after Run has returned, its port is free and
// none of its goroutines is left.
func TestLifecycleHubShutdownWaits(t *testing.T) {
	ctx := t.Context()
	const ns, db = "lifecycle-test", "syndb_lifecycle"
	pg := fed.Stack.Postgres
	admin, err := pgx.Connect(ctx, fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+db)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") })

	nsc, err := client.NewNamespaceClient(client.Options{HostPort: fed.Env["SYNDB_TEMPORAL_ADDRESS"]})
	require.NoError(t, err)
	defer nsc.Close()
	err = nsc.Register(ctx, &workflowservice.RegisterNamespaceRequest{Namespace: ns, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)})
	if _, ok := errors.AsType[*serviceerror.NamespaceAlreadyExists](err); !ok {
		require.NoError(t, err)
	}

	l, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	t.Setenv("SYNDB_POSTGRES_DSN", fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", pg.User, pg.Password, pg.Port, db))
	for _, k := range []string{"SYNDB_TEMPORAL_ADDRESS", "SYNDB_CLICKHOUSE_ADDR", "SYNDB_S3_ENDPOINT", "SYNDB_S3_ACCESS_KEY", "SYNDB_S3_SECRET_KEY"} {
		t.Setenv(k, fed.Env[k])
	}
	t.Setenv("SYNDB_TEMPORAL_NAMESPACE", ns)
	t.Setenv("SYNDB_P2P_LISTEN", "/ip4/127.0.0.1/tcp/"+strconv.Itoa(port))
	t.Setenv("SYNDB_P2P_KEY_FILE", filepath.Join(t.TempDir(), "hub.key"))
	t.Setenv("SYNDB_P2P_MDNS", "false")
	t.Setenv("SYNDB_GATEWAY_ADDR", "127.0.0.1:0") // not the default port, which a running federation may hold
	t.Setenv("SYNDB_P2P_BOOTSTRAP", "")
	cfg, err := config.Load[config.Worker]()
	require.NoError(t, err)

	tc, err := client.Dial(client.Options{HostPort: cfg.Temporal.Address, Namespace: ns})
	require.NoError(t, err)
	defer tc.Close()
	before, beforeAll := len(hubGoroutines()), runtime.NumGoroutine()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A namespace just registered takes a moment to reach every Temporal
	// service: until then the hub's Run fails at the search attributes.
	deadline := time.Now().Add(2 * time.Minute)
	var h *workers.Hub
	var done chan error
	for {
		h, err = workers.NewHub(cfg, log)
		require.NoError(t, err)
		done = make(chan error, 1)
		go func() { done <- h.Run(ctx) }()
		started := false
		for !started {
			select {
			case err := <-done:
				require.True(t, time.Now().Before(deadline), "hub never started: %v", err)
				time.Sleep(time.Second) //nolint:forbidigo // polling with a deadline
			default:
				_, derr := tc.DescribeWorkflowExecution(ctx, workflows.HealthMonitorID, "")
				started = derr == nil
				if !started {
					time.Sleep(100 * time.Millisecond) //nolint:forbidigo // polling with a deadline
					continue
				}
			}
			break
		}
		if started {
			break
		}
	}
	t.Cleanup(func() {
		_ = tc.TerminateWorkflow(context.Background(), workflows.HealthMonitorID, "", "test over")
	})
	require.Greater(t, len(hubGoroutines()), before, "Run started the hub's goroutines")
	c, err := new(net.Dialer).DialContext(context.Background(), "tcp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err, "Run bound the libp2p port")
	_ = c.Close()

	h.Shutdown()
	select {
	case err := <-done:
		require.NoError(t, err)
	default:
		t.Fatal("Shutdown returned before Run")
	}
	left := hubGoroutines()
	require.Len(t, left, before, "hub goroutines left after Shutdown:\n%s", strings.Join(left, "\n\n"))
	l, err = new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err, "libp2p port still bound after Shutdown")
	require.NoError(t, l.Close())
	// The libraries' own goroutines (pools, gRPC) wind down too.
	for runtime.NumGoroutine() > beforeAll+5 {
		require.True(t, time.Now().Before(deadline.Add(time.Minute)), "%d goroutines, %d before Run", runtime.NumGoroutine(), beforeAll)
		time.Sleep(50 * time.Millisecond) //nolint:forbidigo // polling with a deadline
	}
}
