package workers

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/store"
)

// recorder is a worker registry that records each name and forwards the
// registration to the SDK's test environment, which checks the functions'
// signatures and panics on a name registered twice.
type recorder struct {
	worker.Registry
	env        *testsuite.TestWorkflowEnvironment
	workflows  []string
	activities map[string]string // name -> Go function registered
}

func (r *recorder) RegisterWorkflowWithOptions(w any, o workflow.RegisterOptions) {
	r.workflows = append(r.workflows, o.Name)
	r.env.RegisterWorkflowWithOptions(w, o)
}

func (r *recorder) RegisterActivityWithOptions(a any, o activity.RegisterOptions) {
	r.activities[o.Name] = runtime.FuncForPC(reflect.ValueOf(a).Pointer()).Name()
	r.env.RegisterActivityWithOptions(a, o)
}

// stringConsts returns the string constants named *Name in the package in
// dir, and the names of the package's selectors pkg.*Name used in dir.
func stringConsts(t *testing.T, dir, pkg string) (consts, used []string) {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		require.NoError(t, err)
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if !strings.HasSuffix(id.Name, "Name") || i >= len(n.Values) {
						continue
					}
					if lit, ok := n.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, err := strconv.Unquote(lit.Value)
						require.NoError(t, err)
						consts = append(consts, v)
					}
				}
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && x.Name == pkg && strings.HasSuffix(n.Sel.Name, "Name") {
					used = append(used, strings.TrimSuffix(n.Sel.Name, "Name"))
				}
			}
			return true
		})
	}
	return consts, used
}

// TestRegisterRegistersEverything: Register registers every workflow named
// in workflows/ and every activity named in activities/names.go, which
// covers every activity a workflow executes, each under its name and bound
// to the method of that name.
func TestRegisterRegistersEverything(t *testing.T) {
	t.Parallel()
	var suite testsuite.WorkflowTestSuite
	r := &recorder{env: suite.NewTestWorkflowEnvironment(), activities: map[string]string{}}
	Register(r, Activities{})

	wantWorkflows, _ := stringConsts(t, "../workflows", "")
	wantActivities, _ := stringConsts(t, "../internal/domain", "")
	_, calledByWorkflows := stringConsts(t, "../workflows", "domain")
	require.Len(t, wantWorkflows, 8, "the names files read")
	require.Len(t, wantActivities, 29, "the names files read")
	require.ElementsMatch(t, wantWorkflows, r.workflows)
	got := make([]string, 0, len(r.activities))
	for name, fn := range r.activities {
		got = append(got, name)
		require.True(t, strings.HasSuffix(fn, "."+name+"-fm"), "%s is registered as %s", name, fn)
	}
	require.ElementsMatch(t, wantActivities, got)
	for _, name := range calledByWorkflows {
		if strings.HasPrefix(name, "ErrType") {
			continue
		}
		require.Contains(t, got, name, "a workflow executes %s", name)
	}
}

// freePort returns a port nothing listens on (devstack's test ports).
func freePort(t *testing.T) int {
	t.Helper()
	port, err := devstack.FreePort()
	require.NoError(t, err)
	return port
}

// workerConfig is a valid worker configuration whose libp2p host would
// listen on port and whose key would be created at keyFile.
func workerConfig(port int, keyFile string) config.Worker {
	cfg := config.Worker{
		Postgres:   config.Postgres{DSN: "postgres://syndb:pw@127.0.0.1:1/syndb"},
		Temporal:   config.Temporal{Address: "127.0.0.1:1", Namespace: "default"},
		ClickHouse: config.ClickHouse{Addr: "127.0.0.1:1", Database: "syndb"},
		S3:         config.S3{Endpoint: "127.0.0.1:1", AccessKey: "ak", SecretKey: "sk", ResultsBucket: "r", StagingBucket: "s"},
		Listen:     []string{"/ip4/127.0.0.1/tcp/" + strconv.Itoa(port)},
		KeyFile:    keyFile, MaxConns: 64, Health: config.DefaultHealth(), CatalogInterval: time.Minute, BenchmarkInterval: time.Minute,
		RelayMaxDuration: time.Minute, RelayMaxData: 1 << 20,
		Mesh: config.Mesh{MaxUploadBytes: 1 << 20, MaxVertices: 1000, MaxTriangles: 2000},
	}
	cfg.ETL = config.ETL{}
	return cfg
}

// TestNewHubStartsNothing: NewHub refuses a bad configuration before it
// touches anything (no key file written, no port bound, no goroutine), and
// even a good one builds the hub without starting a goroutine or a
// listener; Shutdown before Run returns at once and Run then refuses.
func TestNewHubStartsNothing(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	etl, err := config.Load[config.ETL]()
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		edit  func(*config.Worker)
		error string
	}{
		{"private-network key", func(c *config.Worker) { c.PSK = "abc" }, "SYNDB_P2P_PSK"},
		{"breaker never ejects", func(c *config.Worker) { c.Health.Failures = 0 }, "SYNDB_HEALTH_FAILURES"},
		{"probe backoff above its cap", func(c *config.Worker) { c.Health.MaxProbeBackoff = time.Second }, "SYNDB_HEALTH_PROBE_BACKOFF"},
		{"bootstrap peer", func(c *config.Worker) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4000"} }, "SYNDB_P2P_BOOTSTRAP"},
		{"no DSN", func(c *config.Worker) { c.Postgres.DSN = "" }, "SYNDB_POSTGRES_DSN"},
		{"no S3 secret", func(c *config.Worker) { c.S3.SecretKey = "" }, "SYNDB_S3_SECRET_KEY"},
		{"good", func(*config.Worker) {}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			keyFile := filepath.Join(t.TempDir(), "hub.key")
			cfg := workerConfig(port, keyFile)
			cfg.ETL = etl
			tc.edit(&cfg)
			before := runtime.NumGoroutine()
			h, err := NewHub(cfg, log)
			require.Equal(t, before, runtime.NumGoroutine(), "NewHub started a goroutine")
			l, lerr := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:"+strconv.Itoa(port))
			require.NoError(t, lerr, "NewHub bound the libp2p port")
			require.NoError(t, l.Close())
			if tc.error != "" {
				require.ErrorContains(t, err, tc.error)
				_, serr := os.Stat(keyFile)
				require.ErrorIs(t, serr, os.ErrNotExist, "a refused configuration wrote the key")
				return
			}
			require.NoError(t, err)
			h.Shutdown()
			require.ErrorContains(t, h.Run(t.Context()), "after Shutdown")
		})
	}
}

// heldListener is an access store whose Listen, once its context ends,
// waits for release before returning: a notification connection still
// being handed back to the pool.
type heldListener struct {
	ended, release chan struct{}
}

func (s *heldListener) Access(context.Context) (store.PeerAccess, error) {
	return store.PeerAccess{}, errors.New("not used")
}

func (s *heldListener) Listen(ctx context.Context, _ string, _ func(string), _ func(error)) {
	<-ctx.Done()
	close(s.ended)
	<-s.release
}

// TestAccessSyncJoinsItsListener: the access sync's run returns only after
// its notification listener has returned, so the hub can close the store
// after it.
func TestAccessSyncJoinsItsListener(t *testing.T) {
	t.Parallel()
	st := &heldListener{ended: make(chan struct{}), release: make(chan struct{})}
	a := &accessSync{store: st, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); a.run(ctx) }()
	cancel()
	<-st.ended
	select {
	case <-done:
		t.Fatal("run returned while its listener was still running")
	case <-time.After(200 * time.Millisecond):
	}
	close(st.release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return once its listener had")
	}
}

// silentServer accepts TCP connections and never answers; accepted is
// closed at the first one.
func silentServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	first, served := make(chan struct{}), make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(served)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if conns = append(conns, c); len(conns) == 1 {
				close(first)
			}
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-served
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String(), first
}

// TestShutdownWhileStartingIsACleanStop: a hub stopped while it is still
// starting (here, waiting on a PostgreSQL that never answers) returns nil
// from Run, its stop asked for; a start that fails on its own still returns
// its error.
func TestShutdownWhileStartingIsACleanStop(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	etl, err := config.Load[config.ETL]()
	require.NoError(t, err)
	addr, accepted := silentServer(t)
	cfg := workerConfig(freePort(t), filepath.Join(t.TempDir(), "hub.key"))
	cfg.ETL = etl
	cfg.Postgres.DSN = "postgres://syndb:pw@" + addr + "/syndb?connect_timeout=600"
	h, err := NewHub(cfg, log)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- h.Run(t.Context()) }()
	select {
	case <-accepted:
	case err := <-done:
		t.Fatalf("Run returned before it reached PostgreSQL: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("Run never reached PostgreSQL")
	}
	h.Shutdown() // returns once Run has
	require.NoError(t, <-done, "a stop while starting is a clean stop")

	cfg = workerConfig(freePort(t), filepath.Join(t.TempDir(), "hub.key"))
	cfg.ETL = etl // PostgreSQL at 127.0.0.1:1: nothing listens
	h, err = NewHub(cfg, log)
	require.NoError(t, err)
	require.ErrorContains(t, h.Run(t.Context()), "connect postgres", "a failed start is an error")
	h.Shutdown()
}

// TestHealthSettingsReachTheMonitor: the breaker the hub hands the monitor
// is the configured one, checked by NewHub.
func TestHealthSettingsReachTheMonitor(t *testing.T) {
	etl, err := config.Load[config.ETL]()
	require.NoError(t, err)
	cfg := workerConfig(freePort(t), filepath.Join(t.TempDir(), "hub.key"))
	cfg.ETL = etl
	cfg.Health.Failures = 7
	h, err := NewHub(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	want := health.DefaultConfig()
	want.FailuresToEject = 7
	require.Equal(t, want, h.breaker)
	require.True(t, slices.Equal(h.cfg.Listen, cfg.Listen))
}
