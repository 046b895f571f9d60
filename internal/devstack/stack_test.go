package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
)

func TestStackStartsAndStops(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real services")
	}
	t.Parallel()
	root, err := RepoRoot()
	require.NoError(t, err)
	ports, err := FreePorts("lab-a")
	require.NoError(t, err)
	s := &Stack{Root: t.TempDir(), RepoRoot: root, Ports: ports, Fast: true, Log: slog.New(slog.DiscardHandler)}
	require.NoError(t, s.Start(t.Context()))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = s.Stop(context.Background())
		}
	})
	ctx := t.Context()

	pg, err := pgx.Connect(ctx, s.Postgres.DSN())
	require.NoError(t, err)
	var one int
	require.NoError(t, pg.QueryRow(ctx, "select 1").Scan(&one))
	require.Equal(t, 1, one)
	require.NoError(t, pg.Close(ctx))

	for _, ch := range []*ClickHouse{s.Hub, s.Nodes["lab-a"]} {
		conn, err := clickhouse.Open(ctx, config.ClickHouse{Addr: ch.Addr(), User: "default", Database: "syndb"})
		require.NoError(t, err)
		var v string
		require.NoError(t, conn.QueryRow(ctx, "SELECT version()").Scan(&v))
		require.NotEmpty(t, v)
		var db string
		require.NoError(t, conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&db))
		require.Equal(t, "syndb", db)
		require.NoError(t, conn.Close())
	}

	mc, err := minio.New(fmt.Sprintf("127.0.0.1:%d", ports.MinIO), &minio.Options{Creds: credentials.NewStaticV4(MinIOUser, MinIOPassword, "")})
	require.NoError(t, err)
	require.NoError(t, mc.MakeBucket(ctx, "probe", minio.MakeBucketOptions{}))
	ok, err := mc.BucketExists(ctx, "probe")
	require.NoError(t, err)
	require.True(t, ok)

	tc, err := client.Dial(client.Options{HostPort: fmt.Sprintf("127.0.0.1:%d", ports.Temporal)})
	require.NoError(t, err)
	_, err = tc.CheckHealth(ctx, nil)
	require.NoError(t, err)
	tc.Close()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports.TemporalUI)) //nolint:noctx // a probe
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	require.NoError(t, s.Stop(ctx))
	stopped = true
	all := []int{ports.Postgres, ports.Temporal, ports.TemporalUI, ports.ClickHouseTCP, ports.ClickHouseHTTP, ports.MinIO,
		ports.Nodes[0].ClickHouseTCP}
	for _, p := range all {
		require.Eventually(t, func() bool { return PortFree(p) }, 30*time.Second, 50*time.Millisecond, "port %d still bound after Stop", p)
	}
}

func TestPorts(t *testing.T) {
	t.Parallel()
	p, err := FreePorts("a", "b")
	require.NoError(t, err)
	seen := map[int]bool{}
	for _, v := range []int{p.Postgres, p.Temporal, p.TemporalUI, p.ClickHouseHTTP, p.ClickHouseTCP, p.MinIO, p.MinIOConsole,
		p.Nodes[0].ClickHouseHTTP, p.Nodes[0].ClickHouseTCP, p.Nodes[1].ClickHouseHTTP, p.Nodes[1].ClickHouseTCP} {
		require.False(t, seen[v], "port %d handed out twice", v)
		seen[v] = true
	}
	d := DevPorts()
	require.Equal(t, 7233, d.Temporal)
	require.True(t, d.Postgres == 5432 || d.Postgres >= 55432)
}

// TestClaimPort: a port another live process has claimed is not handed out
// here; the claim of a process that has exited is taken over, and a claim
// is this process's once taken.
func TestClaimPort(t *testing.T) {
	t.Parallel()
	// Ports below freePortLow: FreePort never claims them.
	const live, dead, fresh = 10001, 10002, 10003
	exited := exec.CommandContext(t.Context(), "true")
	require.NoError(t, exited.Run())
	require.NoError(t, os.MkdirAll(portClaims, 0o777))
	for port, pid := range map[int]int{live: 1, dead: exited.Process.Pid} {
		path := filepath.Join(portClaims, strconv.Itoa(port))
		require.NoError(t, os.WriteFile(path, []byte(strconv.Itoa(pid)), 0o644))
		t.Cleanup(func() { _ = os.Remove(path) })
	}
	t.Cleanup(func() { _ = os.Remove(filepath.Join(portClaims, strconv.Itoa(fresh))) })
	require.False(t, claimPort(live), "process 1 holds it")
	require.True(t, claimPort(dead), "its claimer has exited")
	require.True(t, claimPort(fresh))
	for _, port := range []int{dead, fresh} {
		b, err := os.ReadFile(filepath.Join(portClaims, strconv.Itoa(port)))
		require.NoError(t, err)
		require.Equal(t, strconv.Itoa(os.Getpid()), string(b))
	}
}
