// Package e2e runs the federation end to end on real services: PostgreSQL,
// Temporal, ClickHouse for the hub and two nodes, MinIO, and `syndb worker`,
// `syndb api` and two `syndb node` processes, all on 127.0.0.1.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/devstack/fleet"
)

// fed is the federation every test in the package shares.
var fed *fleet.Federation

// syndbBin is the syndb binary built for the tests.
var syndbBin string

// fedRoot is the federation's directory (its logs are under logs/).
var fedRoot string

func TestMain(m *testing.M) {
	flag.Parse()
	// A copy of this binary started inside a network namespace plays one
	// peer of a netns test (see netns_test.go) instead of running tests.
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	root, err := devstack.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "syndb-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	bin := filepath.Join(tmp, "syndb")
	syndbBin = bin
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/syndb")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build syndb:", err)
		return 1
	}
	fedRoot = filepath.Join(tmp, "fed")
	opts, err := fleet.TestOptions(root, fedRoot, bin, "lab-a", "lab-b")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if os.Getenv("SYNDB_E2E_VERBOSE") != "" {
		opts.Out = os.Stderr
	}
	start := time.Now()
	fed, err = fleet.Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start federation:", err)
		dumpLogs(filepath.Join(tmp, "fed", "logs"))
		return 1
	}
	opts.Log.Info("federation up", "took", time.Since(start))
	code := m.Run()
	if code != 0 {
		dumpLogs(filepath.Join(tmp, "fed", "logs"))
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stopCancel()
	if err := fed.Stop(stopCtx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stop federation:", err)
		return 1
	}
	return code
}

// dumpLogs prints the tail of every process log, to explain a failure.
func dumpLogs(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(raw) > 4000 {
			raw = raw[len(raw)-4000:]
		}
		fmt.Fprintf(os.Stderr, "==== %s\n%s\n", f, raw)
	}
}
