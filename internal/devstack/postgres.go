package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const pgBinDir = "/usr/lib/postgresql/15/bin"

// Postgres is a private PostgreSQL 15 cluster.
type Postgres struct {
	Dir                      string
	Port                     int
	User, Password, Database string
	Fast                     bool
	Out                      io.Writer
	LogFile                  string

	proc *Process
}

// DSN returns the connection string of the cluster's database.
func (p *Postgres) DSN() string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", p.User, p.Password, p.Port, p.Database)
}

// Start initialises the cluster when new, starts it and creates the database.
// As root it runs as nobody: PostgreSQL refuses to run as root.
func (p *Postgres) Start(ctx context.Context) error {
	cred, err := pgCredential()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("create postgres dir: %w", err)
	}
	if cred != nil {
		if err := reachable(p.Dir); err != nil {
			return err
		}
		if err := chownTree(p.Dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "PG_VERSION")); err != nil {
		pwfile := filepath.Join(p.Dir, "..", "pgpass.tmp")
		if err := os.WriteFile(pwfile, []byte(p.Password+"\n"), 0o644); err != nil {
			return fmt.Errorf("write postgres password file: %w", err)
		}
		defer func() { _ = os.Remove(pwfile) }()
		cmd := exec.CommandContext(ctx, filepath.Join(pgBinDir, "initdb"), "-D", p.Dir, "-U", p.User,
			"--auth=scram-sha-256", "--pwfile="+pwfile, "-E", "UTF8", "--locale=C")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("initdb %s: %w\n%s", p.Dir, err, out)
		}
	}
	args := []string{"-D", p.Dir, "-p", strconv.Itoa(p.Port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + p.Dir, "-c", "max_connections=200"}
	if p.Fast {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	logFile := p.LogFile
	if cred != nil {
		// The log is written by the supervisor, so root may own it.
		_ = os.MkdirAll(filepath.Dir(logFile), 0o755)
	}
	p.proc, err = StartProcess(ctx, ProcessSpec{
		Name: "postgres", Path: filepath.Join(pgBinDir, "postgres"), Args: args, LogFile: logFile, Out: p.Out,
		Credential: cred, StopSignal: syscall.SIGINT, // fast shutdown
	})
	if err != nil {
		return err
	}
	admin := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/postgres?sslmode=disable", p.User, p.Password, p.Port)
	err = waitFor(ctx, p.proc, time.Minute, func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		defer func() { _ = c.Close(ctx) }()
		var exists bool
		if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", p.Database).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{p.Database}.Sanitize()); err != nil {
				return fmt.Errorf("create database %s: %w", p.Database, err)
			}
		}
		return nil
	})
	return err
}

// Ready checks that the cluster accepts a login to its database.
func (p *Postgres) Ready(ctx context.Context) error {
	c, err := pgx.Connect(ctx, p.DSN())
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

// Stop shuts the cluster down.
func (p *Postgres) Stop(ctx context.Context) error {
	if p.proc == nil {
		return nil
	}
	return p.proc.Stop(ctx, 30*time.Second)
}

func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("postgres refuses root and there is no user nobody: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// reachable adds o+x to every ancestor of dir that lacks it, so the
// unprivileged postgres user can reach its data directory.
func reachable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", dir, err)
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		if info.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, info.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("make %s reachable for postgres: %w", d, err)
			}
		}
		if d == "/" {
			return nil
		}
	}
}

func chownTree(dir string, uid, gid int) error {
	err := filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	return nil
}

// Process returns the server process (nil before Start).
func (p *Postgres) Process() *Process { return p.proc }
