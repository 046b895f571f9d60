package devstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Package is a Debian package and a file that shows it is installed.
type Package struct {
	Binary, Name string
}

// Packages are the Debian packages the stack needs.
var Packages = []Package{
	{Binary: clickhouseBin, Name: "clickhouse-server"},
	{Binary: filepath.Join(pgBinDir, "postgres"), Name: "postgresql-15"},
	// tcpdump captures the links between the netns tests' namespaces.
	{Binary: "/usr/bin/tcpdump", Name: "tcpdump"},
}

var aptMu sync.Mutex

// EnsurePackages installs, with apt-get, the packages whose binary is missing.
func EnsurePackages(ctx context.Context, log *slog.Logger, want []Package) error {
	aptMu.Lock()
	defer aptMu.Unlock()
	unlock, err := lockFile(filepath.Join(os.TempDir(), "syndb-apt.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	var missing []string
	for _, p := range want {
		if _, err := os.Stat(p.Binary); err != nil {
			missing = append(missing, p.Name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	log.Info("installing Debian packages", "packages", missing)
	install := func() ([]byte, error) {
		return apt(ctx, append([]string{"install", "-y", "--no-install-recommends"}, missing...)...)
	}
	if _, err := install(); err != nil {
		log.Info("apt-get install failed; updating package lists and retrying")
		if uout, uerr := apt(ctx, "update"); uerr != nil {
			return fmt.Errorf("apt-get update: %w\n%s", uerr, uout)
		}
		if out, err := install(); err != nil {
			return fmt.Errorf("apt-get install %s: %w\n%s", strings.Join(missing, " "), err, out)
		}
	}
	return nil
}

func apt(ctx context.Context, args ...string) ([]byte, error) {
	name := "apt-get"
	if os.Geteuid() != 0 {
		args = append([]string{"-n", "apt-get"}, args...)
		name = "sudo"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.CombinedOutput()
}

var toolMu sync.Mutex

// EnsureTool builds tool name from its pinned module tools/<name> into
// <repoRoot>/.dev/bin/<name>, unless it is there and newer than the module.
func EnsureTool(ctx context.Context, log *slog.Logger, repoRoot, name string) (string, error) {
	toolMu.Lock()
	defer toolMu.Unlock()
	if err := os.MkdirAll(filepath.Join(repoRoot, ".dev", "bin"), 0o755); err != nil {
		return "", fmt.Errorf("create tool directory: %w", err)
	}
	// Test packages run as separate processes and may build the same tool.
	unlock, err := lockFile(filepath.Join(repoRoot, ".dev", "bin", "."+name+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	modDir := filepath.Join(repoRoot, "tools", name)
	modFile := filepath.Join(modDir, "go.mod")
	bin := filepath.Join(repoRoot, ".dev", "bin", name)
	mi, err := os.Stat(modFile)
	if err != nil {
		return "", fmt.Errorf("tool %s: %w", name, err)
	}
	if bi, err := os.Stat(bin); err == nil && bi.ModTime().After(mi.ModTime()) {
		return bin, nil
	}
	pkg, err := toolPackage(modFile)
	if err != nil {
		return "", err
	}
	log.Info("building tool (the first time takes minutes)", "tool", name, "package", pkg)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = modDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build tool %s: %w\n%s", name, err, out)
	}
	log.Info("tool built", "tool", name, "path", bin)
	return bin, nil
}

// lockFile takes an exclusive lock on path, across processes.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

// toolPackage reads the first `tool` directive of a go.mod.
func toolPackage(modFile string) (string, error) {
	f, err := os.Open(modFile)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", modFile, err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == "tool" {
			return fields[1], nil
		}
	}
	return "", fmt.Errorf("%s has no tool directive", modFile)
}

// RepoRoot walks up from the working directory to the module root.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		raw, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(raw), "module github.com/syndb/federation\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the syndb federation repository (no go.mod of github.com/syndb/federation above the working directory)")
		}
		dir = parent
	}
}
