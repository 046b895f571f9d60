package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/devstack/fleet"
)

func devCmd() *cobra.Command {
	var detach, stop, useTLS bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole federation on this machine (services, hub, two seeded nodes)",
		Long: `Run the whole federation on 127.0.0.1 with data under .dev/: PostgreSQL, Temporal,
ClickHouse for the hub and each node, MinIO, the hub's worker and API, and the node agents
lab-a and lab-b with seeded data. Whatever is missing is installed first.
A process that dies is restarted with backoff (0.5 s doubling, at most 10 s) and the restart
logged; one that dies more than 5 times in a minute stops everything, and dev exits non-zero.
Federated queries run on the hub's ClickHouse as the read-only user syndb_query.
In the foreground, Ctrl-C stops everything. --detach starts it in the background and returns
once it is ready; --stop stops a detached federation.
--tls serves the API and its Flight server over TLS with a self-signed certificate for
127.0.0.1 and localhost, written to .dev/tls/api.crt on first use and kept:
  curl --cacert .dev/tls/api.crt https://127.0.0.1:8080/healthz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			root, err := devstack.RepoRoot()
			if err != nil {
				return err
			}
			d := devDirs{root: root, dev: filepath.Join(root, ".dev"), tls: useTLS}
			switch {
			case detach && stop:
				return errors.New("--detach and --stop do not go together")
			case detach:
				return d.detach(cmd.Context(), cmd.OutOrStdout())
			case stop:
				return d.stop(cmd.Context(), cmd.OutOrStdout())
			}
			return d.run(cmd.Context(), cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&detach, "detach", false, "start in the background and return once ready")
	cmd.Flags().BoolVar(&stop, "stop", false, "stop a federation started with --detach")
	cmd.Flags().BoolVar(&useTLS, "tls", false, "serve the API and Flight over TLS (self-signed certificate in .dev/tls/)")
	return cmd
}

type devDirs struct {
	root, dev string
	// tls serves the API over TLS (--tls).
	tls bool
}

func (d devDirs) pidFile() string   { return filepath.Join(d.dev, "dev.pid") }
func (d devDirs) readyFile() string { return filepath.Join(d.dev, "ready") }
func (d devDirs) logFile() string   { return filepath.Join(d.dev, "logs", "dev.log") }

// running returns the pid of a live `syndb dev`, or 0.
func (d devDirs) running() int {
	raw, err := os.ReadFile(d.pidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return 0
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return 0
	}
	return pid
}

func (d devDirs) run(ctx context.Context, out io.Writer) error {
	if pid := d.running(); pid != 0 && pid != os.Getpid() {
		return fmt.Errorf("a dev federation is already running (pid %d); stop it with `go tool task down`", pid)
	}
	if err := os.MkdirAll(filepath.Join(d.dev, "logs"), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", d.dev, err)
	}
	_ = os.Remove(d.readyFile())
	if err := os.WriteFile(d.pidFile(), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	defer func() {
		_ = os.Remove(d.readyFile())
		_ = os.Remove(d.pidFile())
	}()
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	log := logger("dev")
	opts := fleet.DevOptions(d.root)
	opts.Binary, opts.Out, opts.Log, opts.TLS = bin, out, log, d.tls
	start := time.Now()
	log.Info("starting dev federation", "data", d.dev)
	fed, err := fleet.Start(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var runErr error
	if err := fed.WriteEnv(filepath.Join(d.root, config.DevEnvFile)); err != nil {
		runErr = err
	} else {
		banner := devBanner(fed, opts, d.root, time.Since(start))
		fmt.Fprint(out, banner)
		if err := os.WriteFile(d.readyFile(), []byte(banner), 0o644); err != nil {
			runErr = fmt.Errorf("write ready file: %w", err)
		} else {
			// A crashed process is restarted (logged); one that keeps
			// crashing ends Wait, and everything stops with the reason.
			runErr = fed.Wait(ctx)
			if runErr != nil {
				log.Error("a federation process is down for good; stopping everything", "err", runErr)
				runErr = fmt.Errorf("dev federation stopped: %w", runErr)
			}
		}
	}
	log.Info("stopping dev federation")
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := fed.Stop(stopCtx); err != nil {
		return errors.Join(runErr, err)
	}
	log.Info("dev federation stopped")
	return runErr
}

func devBanner(f *fleet.Federation, o fleet.Options, root string, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nSynDB dev federation ready in %s\n\n", took.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "  API          %s  (key in .dev/dev-api-key)\n", f.APIURL)
	fmt.Fprintf(&b, "  API key      %s\n", f.APIKey)
	flight, curl := "grpc", "curl -s"
	if f.APICert != "" {
		cert := f.APICert
		if rel, err := filepath.Rel(root, cert); err == nil && !strings.HasPrefix(rel, "..") {
			cert = rel
		}
		flight, curl = "grpc+tls", "curl -s --cacert "+cert
		fmt.Fprintf(&b, "  TLS          self-signed certificate %s (trust it: %s %s/healthz)\n", cert, curl, f.APIURL)
	}
	fmt.Fprintf(&b, "  Flight       %s://%s\n", flight, f.Env["SYNDB_API_FLIGHT_PUBLIC_ADDR"])
	fmt.Fprintf(&b, "  Temporal UI  http://127.0.0.1:%d\n", o.Ports.TemporalUI)
	fmt.Fprintf(&b, "  Temporal     127.0.0.1:%d   (.dev/bin/temporal workflow list)\n", o.Ports.Temporal)
	fmt.Fprintf(&b, "  PostgreSQL   %s\n", f.Env["SYNDB_POSTGRES_DSN"])
	fmt.Fprintf(&b, "  ClickHouse   hub 127.0.0.1:%d", o.Ports.ClickHouseTCP)
	for _, n := range o.Ports.Nodes {
		fmt.Fprintf(&b, ", %s 127.0.0.1:%d", n.Name, n.ClickHouseTCP)
	}
	fmt.Fprintf(&b, "\n  MinIO        http://127.0.0.1:%d (console :%d)\n", o.Ports.MinIO, o.Ports.MinIOConsole)
	fmt.Fprintf(&b, "  Hub libp2p   %s\n", f.HubAddr)
	fmt.Fprintf(&b, "  Relay (DHT)  %s\n\n", f.RelayAddr)
	fmt.Fprintf(&b, "  Try:  %s -X POST %s/v1/federation/schema/sync -H \"Authorization: Bearer %s\"\n\n", curl, f.APIURL, f.APIKey)
	return b.String()
}

// detach starts `syndb dev` in its own session, logging to .dev/logs/dev.log,
// and returns once it is ready (or failed).
func (d devDirs) detach(ctx context.Context, out io.Writer) error {
	if pid := d.running(); pid != 0 {
		if banner, err := os.ReadFile(d.readyFile()); err == nil {
			fmt.Fprintf(out, "dev federation already running (pid %d)\n%s", pid, banner)
			return nil
		}
		fmt.Fprintf(out, "dev federation is starting (pid %d); waiting for it\n", pid)
		return d.waitReady(ctx, out, pid, nil)
	}
	if err := os.MkdirAll(filepath.Dir(d.logFile()), 0o755); err != nil {
		return fmt.Errorf("create log directory: %w", err)
	}
	logf, err := os.OpenFile(d.logFile(), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", d.logFile(), err)
	}
	defer func() { _ = logf.Close() }()
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	_ = os.Remove(d.readyFile())
	// The federation outlives this command: it must not die with ctx.
	args := []string{"dev"}
	if d.tls {
		args = append(args, "--tls")
	}
	c := exec.Command(bin, args...) //nolint:noctx // detached on purpose
	c.Dir, c.Stdout, c.Stderr = d.root, logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("start dev federation: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	fmt.Fprintf(out, "starting dev federation in the background (pid %d, log %s)\n", c.Process.Pid, d.logFile())
	return d.waitReady(ctx, out, c.Process.Pid, exited)
}

func (d devDirs) waitReady(ctx context.Context, out io.Writer, pid int, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if banner, err := os.ReadFile(d.readyFile()); err == nil {
			fmt.Fprint(out, string(banner))
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("dev federation exited before it was ready (%v); last lines of %s:\n%s", err, d.logFile(), tail(d.logFile(), 30))
		case <-ctx.Done():
			return fmt.Errorf("dev federation (pid %d) not ready: %w; see %s", pid, ctx.Err(), d.logFile())
		case <-tick.C:
			if exited == nil && syscall.Kill(pid, 0) != nil {
				return fmt.Errorf("dev federation (pid %d) exited before it was ready; see %s", pid, d.logFile())
			}
		}
	}
}

// stop sends SIGTERM to a detached federation and waits for it to finish
// its ordered shutdown (SIGKILL after a bound).
func (d devDirs) stop(ctx context.Context, out io.Writer) error {
	pid := d.running()
	if pid == 0 {
		fmt.Fprintln(out, "dev federation is not running")
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal dev federation (pid %d): %w", pid, err)
	}
	fmt.Fprintf(out, "stopping dev federation (pid %d)\n", pid)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for syscall.Kill(pid, 0) == nil {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return fmt.Errorf("dev federation (pid %d) did not stop in time; killed it", pid)
		case <-tick.C:
		}
	}
	fmt.Fprintln(out, "dev federation stopped")
	return nil
}

func tail(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
