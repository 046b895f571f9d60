package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"
)

// Stack is the set of backing services of a federation.
type Stack struct {
	Root     string
	RepoRoot string
	Ports    Ports
	Out      io.Writer
	Log      *slog.Logger
	Fast     bool
	// SearchAttributes are registered with Temporal (name -> type).
	SearchAttributes map[string]string
	// Restart, when set, supervises every service once all are ready: one
	// that exits is restarted by this policy (see Process.Supervise).
	Restart *RestartPolicy

	Postgres *Postgres
	Hub      *ClickHouse
	Nodes    map[string]*ClickHouse
	MinIO    *MinIO
	Temporal *Temporal
}

type service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Ready(ctx context.Context) error
	Process() *Process
}

// Start installs what is missing and starts every service, concurrently,
// returning once all are ready. On failure it stops what started.
func (s *Stack) Start(ctx context.Context) error {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	logs := filepath.Join(s.Root, "logs")
	var (
		wg                 sync.WaitGroup
		pkgErr             error
		temporalBin, minio string
		tErr, mErr         error
	)
	wg.Go(func() { pkgErr = EnsurePackages(ctx, s.Log, Packages) })
	wg.Go(func() {
		temporalBin, tErr = EnsureTool(ctx, s.Log, s.RepoRoot, "temporal")
		if tErr == nil {
			minio, mErr = EnsureTool(ctx, s.Log, s.RepoRoot, "minio")
		}
	})
	wg.Wait()
	if err := errors.Join(pkgErr, tErr, mErr); err != nil {
		return err
	}

	s.Postgres = &Postgres{Dir: filepath.Join(s.Root, "postgres", "data"), Port: s.Ports.Postgres, User: "syndb",
		Password: "syndb", Database: "syndb", Fast: s.Fast, Out: s.Out, LogFile: filepath.Join(logs, "postgres.log")}
	s.Hub = &ClickHouse{Name: "clickhouse-hub", Dir: filepath.Join(s.Root, "clickhouse", "hub"), HTTPPort: s.Ports.ClickHouseHTTP,
		TCPPort: s.Ports.ClickHouseTCP, QueryUser: QueryUser, QueryPassword: QueryPassword,
		Out: s.Out, LogFile: filepath.Join(logs, "clickhouse-hub.log")}
	s.Nodes = map[string]*ClickHouse{}
	s.MinIO = &MinIO{Bin: minio, Dir: filepath.Join(s.Root, "minio"), Port: s.Ports.MinIO, ConsolePort: s.Ports.MinIOConsole,
		Out: s.Out, LogFile: filepath.Join(logs, "minio.log")}
	s.Temporal = &Temporal{Bin: temporalBin, DBFile: filepath.Join(s.Root, "temporal", "temporal.db"), Port: s.Ports.Temporal,
		UIPort: s.Ports.TemporalUI, SearchAttributes: s.SearchAttributes, Out: s.Out, LogFile: filepath.Join(logs, "temporal.log")}
	named := map[string]service{"postgres": s.Postgres, "clickhouse-hub": s.Hub, "minio": s.MinIO, "temporal": s.Temporal}
	for _, n := range s.Ports.Nodes {
		ch := &ClickHouse{Name: "clickhouse-" + n.Name, Dir: filepath.Join(s.Root, "clickhouse", n.Name), HTTPPort: n.ClickHouseHTTP,
			TCPPort: n.ClickHouseTCP, GatewayUser: GatewayUser, GatewayPassword: GatewayPassword,
			Out: s.Out, LogFile: filepath.Join(logs, "clickhouse-"+n.Name+".log")}
		s.Nodes[n.Name] = ch
		named["clickhouse-"+n.Name] = ch
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	for name, svc := range named {
		wg.Go(func() {
			start := time.Now()
			err := svc.Start(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("start %s: %w", name, err))
				return
			}
			s.Log.Info("service ready", "service", name, "took", time.Since(start).Round(time.Millisecond))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = s.Stop(stopCtx)
		return err
	}
	if s.Restart != nil {
		for _, p := range s.Processes() {
			p.Supervise(*s.Restart, s.Log)
		}
	}
	return nil
}

// Ready checks, concurrently, that every service answers (a restarted hub
// process waits for it).
func (s *Stack) Ready(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for name, svc := range s.services() {
		wg.Go(func() {
			if err := svc.Ready(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// services returns the started services by name.
func (s *Stack) services() map[string]service {
	out := map[string]service{}
	if s.Postgres != nil {
		out["postgres"] = s.Postgres
	}
	if s.Hub != nil {
		out["clickhouse-hub"] = s.Hub
	}
	if s.MinIO != nil {
		out["minio"] = s.MinIO
	}
	if s.Temporal != nil {
		out["temporal"] = s.Temporal
	}
	for name, ch := range s.Nodes {
		out["clickhouse-"+name] = ch
	}
	return out
}

// Processes returns the process of every started service, by service name.
func (s *Stack) Processes() map[string]*Process {
	out := map[string]*Process{}
	for name, svc := range s.services() {
		if p := svc.Process(); p != nil {
			out[name] = p
		}
	}
	return out
}

// Stop stops every service that was started; all are stopped even if one fails.
func (s *Stack) Stop(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	stop := func(name string, svc service) {
		wg.Go(func() {
			if err := svc.Stop(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("stop %s: %w", name, err))
				mu.Unlock()
			}
		})
	}
	if s.Temporal != nil {
		stop("temporal", s.Temporal)
	}
	if s.MinIO != nil {
		stop("minio", s.MinIO)
	}
	for name, ch := range s.Nodes {
		stop("clickhouse-"+name, ch)
	}
	if s.Hub != nil {
		stop("clickhouse-hub", s.Hub)
	}
	if s.Postgres != nil {
		stop("postgres", s.Postgres)
	}
	wg.Wait()
	return errors.Join(errs...)
}
