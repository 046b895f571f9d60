// Package api is `syndb api`: the hub's Echo HTTP API. It authenticates
// callers by API key, starts workflows through the typed helpers of package
// workflows and reports on them, and lists the federation's registry.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.temporal.io/sdk/client"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/fedsql"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/registry"
	"github.com/syndb/federation/internal/store"
)

// apiStore is what the API needs of PostgreSQL.
type apiStore interface {
	Authenticate(ctx context.Context, key string) (store.Principal, error)
	Clusters(ctx context.Context, activeOnly bool) ([]store.Cluster, error)
	CreateCluster(ctx context.Context, name string, ttl time.Duration) (store.Enrollment, error)
	RevokeCluster(ctx context.Context, name string) (store.Cluster, error)
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
}

// Server is the hub's HTTP API.
type Server struct {
	cfg  config.API
	deps Deps
	e    *echo.Echo
	// catalog is what federated SQL may read: the hub's tables and columns,
	// each with the schema version that introduced it.
	catalog fedsql.Catalog
	// types are the ClickHouse types of the tables' columns.
	types map[string]map[string]string
}

// New builds the API with its routes.
func New(cfg config.API, deps Deps) *Server {
	if deps.Query == nil {
		deps.Query = deps.Warehouse
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	s := &Server{cfg: cfg, deps: deps, e: e, catalog: fedsql.Catalog(migrate.ColumnVersions(deps.Migrations))}
	delete(s.catalog, migrate.LedgerTable)
	s.types = migrate.ColumnTypes(deps.Migrations)
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, DisablePrintStack: true}))
	e.Use(middleware.BodyLimit("1M"))
	e.Use(s.logRequests)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	v1 := e.Group("/v1", s.authenticate)
	v1.GET("/federation/schema", s.schemaStatus)
	v1.POST("/federation/schema/sync", s.startSchemaSync)
	v1.GET("/federation/schema/sync/:id", s.schemaSyncStatus)
	v1.GET("/federation/clusters", s.listClusters)
	v1.GET("/federation/clusters/:name/health/history", s.healthHistory)
	v1.GET("/federation/health", s.healthReport)
	v1.POST("/federation/health/sweep", s.sweepNow)
	v1.GET("/federation/routing", s.routingPlan)
	v1.POST("/query", s.query)
	v1.POST("/jobs", s.createJob)
	v1.POST("/datasets/uploads", s.createUpload)
	v1.GET("/jobs", s.listJobs)
	v1.GET("/jobs/:id", s.getJob)
	v1.GET("/jobs/:id/result", s.jobResult)
	v1.DELETE("/jobs/:id", s.cancelJob)
	v1.GET("/datasets", s.searchDatasets)
	v1.POST("/datasets/sync", s.startCatalogSync)
	v1.GET("/datasets/sync/:id", s.catalogSyncStatus)
	v1.GET("/datasets/:node/:id", s.getDataset)
	v1.GET("/ontology", s.ontologyStatus)
	v1.POST("/ontology/sync", s.startOntologySync)
	v1.GET("/ontology/sync/:id", s.ontologySyncStatus)
	v1.POST("/federation/clusters", s.createCluster, requireAdmin)
	v1.DELETE("/federation/clusters/:name", s.revokeCluster, requireAdmin)
	return s
}

// Handler returns the HTTP handler, for tests.
func (s *Server) Handler() http.Handler { return s.e }

// Serve listens on cfg.Addr until ctx ends, then drains in-flight requests
// within cfg.ShutdownTimeout.
func (s *Server) Serve(ctx context.Context) error {
	srv := &http.Server{Addr: s.cfg.Addr, Handler: s.e, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	s.deps.Log.Info("api listening", "addr", s.cfg.Addr)
	select {
	case err := <-errc:
		return fmt.Errorf("serve api on %s: %w", s.cfg.Addr, err)
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
