// Package api is `syndb api`: the hub's Echo HTTP API. It authenticates
// callers by API key, starts workflows through the typed helpers of package
// workflows and reports on them, and lists the federation's registry.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.temporal.io/sdk/client"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/fedsql"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/registry"
	"github.com/syndb/federation/internal/store"
)

// apiStore is what the API needs of PostgreSQL.
type apiStore interface {
	Authenticate(ctx context.Context, key string) (store.Principal, error)
	Clusters(ctx context.Context, activeOnly bool) ([]domain.Cluster, error)
	CreateCluster(ctx context.Context, name string, ttl time.Duration, dataHost string) (store.Enrollment, error)
	RevokeCluster(ctx context.Context, name string) (domain.Cluster, error)
	Ping(ctx context.Context) error
	SchemaTarget(ctx context.Context) (int, error)
	HealthHistory(ctx context.Context, cluster string, limit int, before int64) ([]store.HealthTransition, error)
}

// registryReader serves the registry's latest in-memory snapshot, lock-free.
type registryReader interface {
	Snapshot() *registry.Snapshot
}

// Deps are the API's connections, opened by the caller.
type Deps struct {
	Store      apiStore
	Jobs       jobsStore
	Objects    presigner
	Registry   registryReader
	Temporal   client.Client
	Warehouse  driver.Conn
	Log        *slog.Logger
	SchemaHead int // the newest embedded migration: the default sync target
	// Migrations are the hub's embedded ClickHouse migrations, 1..SchemaHead.
	Migrations []migrate.Migration
	// Catalog serves the dataset catalog and the nodes' ontology versions.
	Catalog catalogStore
	// Query is the hub warehouse as the read-only query user: federated
	// SQL runs there. Warehouse when nil.
	Query driver.Conn
	// Queries keeps the history of federated queries; none is recorded
	// when nil.
	Queries queriesStore
	// Audit keeps the audit log of the API's calls; none is recorded when
	// nil.
	Audit auditStore
	// Benchmarks serves the recorded node benchmarks.
	Benchmarks benchmarkStore
	// Keys authenticates API keys (internal/keyauth: cached, last uses
	// written in batches); Store when nil.
	Keys keyAuthenticator
	// Meshes reads the meshes the hub recorded (their metrics in a mesh's
	// download answer); none are read when nil.
	Meshes meshRecords
	// TLS is the certificate the HTTP API and the Flight server serve;
	// both are plaintext when nil.
	TLS *Certificate
}

// Server is the hub's HTTP API.
type Server struct {
	cfg  config.API
	deps Deps
	e    *echo.Echo
	// catalog is what federated SQL may read: the hub's tables and columns,
	// each with the schema version that introduced it.
	catalog fedsql.Catalog
	// columns are the SynDB tables' columns and the versions that added them.
	columns map[string]map[string]int
	// types are the ClickHouse types of the tables' columns.
	types map[string]map[string]string
	// limits are each key's request rate and queries at once.
	limits *keyLimits
	// refusals are each client address's budget of refused API keys.
	refusals *buckets[string]
	// auditLog writes the audit entries (nil without deps.Audit).
	auditLog *auditLog
}

// New builds the API with its routes.
func New(cfg config.API, deps Deps) *Server {
	if deps.Query == nil {
		deps.Query = deps.Warehouse
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	versions := migrate.ColumnVersions(deps.Migrations)
	delete(versions, migrate.LedgerTable)
	s := &Server{cfg: cfg, deps: deps, e: e, columns: versions,
		catalog:  fedsql.NewCatalog(versions, migrate.ColumnOrder(deps.Migrations)).WithTypes(migrate.ColumnTypes(deps.Migrations)),
		limits:   newKeyLimits(cfg.Limits),
		refusals: newBuckets[string](refusedKeyRate, refusedKeyBurst)}
	s.types = migrate.ColumnTypes(deps.Migrations)
	if deps.Audit != nil {
		s.auditLog = newAuditLog(deps.Audit, cfg.Audit.Buffer, deps.Log)
	}
	e.IPExtractor = clientIP(cfg.TrustedProxies)
	e.HTTPErrorHandler = s.handleError
	// The request's log line and audit entry, then its answer: a panic is
	// a 500 the audit entry records.
	e.Use(s.logRequests, s.auditRequests)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, DisablePrintStack: true}))

	// Each /v1 route: its key, its body cap, its key's rate, its role.
	v1 := e.Group("/v1", s.authenticate)
	for _, r := range s.routes() {
		if r.Role == Public {
			e.Add(r.Method, r.Path, r.handler, capBody(r.MaxBody))
			continue
		}
		v1.Add(r.Method, strings.TrimPrefix(r.Path, "/v1"), r.handler, capBody(r.MaxBody), s.limitRate, requireRole(r.Role))
	}
	return s
}

// clientIP is how the API tells a request's client address (the audit
// log's): the connection's peer, or, from the proxies given, the address
// their X-Forwarded-For names.
func clientIP(trusted []string) echo.IPExtractor {
	nets, _ := config.ParseProxies(trusted) // checked by config.API.Validate
	if len(nets) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range nets {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// Public is the Role of the routes that need no API key.
const Public = ""

// Route is one route of the API and the least role a key needs to call it.
type Route struct {
	Method string
	// Path is Echo's pattern: /v1/jobs/:id.
	Path string
	// Role is store.RoleReader, store.RoleOperator, store.RoleAdmin or
	// Public.
	Role string
	// MaxBody caps the request body in bytes: a longer one is a 413.
	MaxBody int64
	handler echo.HandlerFunc
}

// routes is the API: every route is registered from this table, and its
// role is checked by requireRole, its body capped by capBody. The README's
// API table lists the same routes and roles.
func (s *Server) routes() []Route {
	const (
		get, post, del = http.MethodGet, http.MethodPost, http.MethodDelete
		reader         = store.RoleReader
		operator       = store.RoleOperator
		admin          = store.RoleAdmin
		small, job     = bodySmall, bodyJob
		query          = bodyQuery
	)
	return []Route{
		{get, "/healthz", Public, small, s.healthz},
		{get, "/readyz", Public, small, s.readyz},
		{get, "/v1/federation/schema", reader, small, s.schemaStatus},
		{post, "/v1/federation/schema/sync", operator, small, s.startSchemaSync},
		{get, "/v1/federation/schema/sync/:id", reader, small, s.schemaSyncStatus},
		{get, "/v1/federation/clusters", reader, small, s.listClusters},
		{get, "/v1/federation/health", reader, small, s.healthReport},
		{get, "/v1/federation/clusters/:name/health/history", reader, small, s.healthHistory},
		{post, "/v1/federation/health/sweep", operator, small, s.sweepNow},
		{post, "/v1/query", reader, query, s.limitQueries(s.query)},
		{post, "/v1/query/explain", reader, query, s.explainQuery},
		{get, "/v1/queries", reader, small, s.listQueries},
		{get, "/v1/queries/:id", reader, small, s.getQuery},
		{del, "/v1/queries/:id", reader, small, s.cancelQuery},
		{post, "/v1/jobs", operator, job, s.createJob},
		{post, "/v1/datasets/uploads", operator, small, s.createUpload},
		{get, "/v1/jobs", reader, small, s.listJobs},
		{get, "/v1/jobs/:id", reader, small, s.getJob},
		{get, "/v1/jobs/:id/result", reader, small, s.jobResult},
		{del, "/v1/jobs/:id", operator, small, s.cancelJob},
		{get, "/v1/datasets", reader, small, s.searchDatasets},
		{get, "/v1/datasets/:node/:id", reader, small, s.getDataset},
		{post, "/v1/datasets/:node/:id/meshes", operator, small, s.createMeshUpload},
		{get, "/v1/datasets/:node/:id/meshes/:table/:cid", reader, small, s.getMesh},
		{post, "/v1/datasets/:node/:id/meshes/:table/:cid/ingest", operator, small, s.startMeshIngest},
		{get, "/v1/datasets/:node/:id/meshes/:table/:cid/ingest", reader, small, s.meshIngestStatus},
		{post, "/v1/datasets/sync", operator, small, s.startCatalogSync},
		{get, "/v1/datasets/sync/:id", reader, small, s.catalogSyncStatus},
		{get, "/v1/ontology", reader, small, s.ontologyStatus},
		{post, "/v1/ontology/sync", operator, small, s.startOntologySync},
		{get, "/v1/ontology/sync/:id", reader, small, s.ontologySyncStatus},
		{get, "/v1/federation/routing", reader, small, s.routingPlan},
		{post, "/v1/federation/benchmarks", operator, small, s.startBenchmark},
		{get, "/v1/federation/benchmarks", reader, small, s.listBenchmarks},
		{get, "/v1/federation/benchmarks/:id", reader, small, s.benchmarkStatus},
		{post, "/v1/federation/clusters", admin, small, s.createCluster},
		{del, "/v1/federation/clusters/:name", admin, small, s.revokeCluster},
		{post, "/v1/apikeys", admin, small, s.createKey},
		{get, "/v1/apikeys", admin, small, s.listKeys},
		{del, "/v1/apikeys/:id", admin, small, s.revokeKey},
		{get, "/v1/audit", admin, small, s.listAudit},
		{post, "/v1/apikeys/:id/rotate", admin, small, s.rotateKey},
	}
}

// Routes lists the API's routes and the least role each needs.
func (s *Server) Routes() []Route { return s.routes() }

// Handler returns the HTTP handler, for tests.
func (s *Server) Handler() http.Handler { return s.e }

// Serve listens on cfg.Addr until ctx ends, then drains in-flight requests
// within cfg.ShutdownTimeout.
func (s *Server) Serve(ctx context.Context) error {
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("serve api: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.serve(ctx, lis)
}

// serve serves the API on lis (over TLS with deps.TLS) until ctx ends.
func (s *Server) serve(ctx context.Context, lis net.Listener) error {
	// The audit log's writer outlives every request: it stops after the
	// last one was answered, and writes what they left.
	s.auditLog.start()
	defer s.auditLog.Close()
	srv := &http.Server{Handler: s.e, ReadHeaderTimeout: 10 * time.Second,
		// TLS handshake failures (an untrusted certificate, plain HTTP on
		// the TLS port) are logged here.
		ErrorLog: slog.NewLogLogger(s.deps.Log.Handler(), slog.LevelInfo)}
	addr := lis.Addr().String()
	errc := make(chan error, 1)
	if s.deps.TLS != nil {
		srv.TLSConfig = s.deps.TLS.serverConfig()
		go func() { errc <- srv.ServeTLS(lis, "", "") }()
		leaf := s.deps.TLS.Leaf()
		s.deps.Log.Info("api listening over TLS", "addr", addr, "url", s.cfg.PublicURL,
			"subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
	} else {
		go func() { errc <- srv.Serve(lis) }()
		s.deps.Log.Warn("api listening in plaintext: API keys and results cross the network unencrypted; set SYNDB_TLS_CERT and SYNDB_TLS_KEY to serve HTTPS",
			"addr", addr, "url", s.cfg.PublicURL)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve api on %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shut down api: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve api: %w", err)
	}
	s.deps.Log.Info("api stopped")
	return nil
}

func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		s.deps.Log.Info("request", "method", c.Request().Method, "path", c.Path(), "status", c.Response().Status,
			"took", time.Since(start))
		return nil
	}
}
