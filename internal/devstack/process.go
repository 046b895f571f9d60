// Package devstack runs the real backing services of the federation
// (PostgreSQL, ClickHouse, MinIO, the Temporal dev server) as supervised child
// processes on 127.0.0.1, with private ports and data directories. It installs
// what is missing first: Debian packages, and tool binaries built from the
// pinned tool modules under tools/.
package devstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcessSpec describes a child process.
type ProcessSpec struct {
	Name    string
	Path    string
	Args    []string
	Env     []string // nil: inherit
	Dir     string
	LogFile string
	// Out, when not nil, receives every output line prefixed with "[Name] ".
	Out io.Writer
	// Credential runs the process as another user (PostgreSQL refuses root).
	Credential *syscall.Credential
	// StopSignal is sent by Stop; SIGTERM when zero.
	StopSignal syscall.Signal
}

// Process is a supervised child process. It runs in its own process group
// and is killed if the supervisor dies.
type Process struct {
	spec ProcessSpec
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
	cp   sync.WaitGroup
}

var outMu sync.Mutex

// StartProcess starts spec.
func StartProcess(_ context.Context, spec ProcessSpec) (*Process, error) {
	if err := os.MkdirAll(filepath.Dir(spec.LogFile), 0o755); err != nil {
		return nil, fmt.Errorf("create log directory for %s: %w", spec.Name, err)
	}
	logf, err := os.OpenFile(spec.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", spec.Name, err)
	}
	// A service outlives the start call; Stop ends it, in order.
	cmd := exec.Command(spec.Path, spec.Args...) //nolint:noctx // lifetime is managed by Stop
	cmd.Env, cmd.Dir = spec.Env, spec.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: spec.Credential}
	p := &Process{spec: spec, cmd: cmd, log: logf, done: make(chan struct{})}
	var pw *io.PipeWriter
	if spec.Out != nil {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		p.cp.Go(func() { p.copyLines(pr) })
	} else {
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	if err := cmd.Start(); err != nil {
		if pw != nil {
			_ = pw.Close()
			p.cp.Wait()
		}
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	go func() {
		p.err = cmd.Wait()
		if pw != nil {
			_ = pw.Close()
		}
		p.cp.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *Process) copyLines(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = p.log.Write(append(line, '\n'))
		outMu.Lock()
		_, _ = fmt.Fprintf(p.spec.Out, "[%s] %s\n", p.spec.Name, line)
		outMu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// Pid returns the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit error, valid after Done.
func (p *Process) Err() error {
	select {
	case <-p.done:
		if p.err == nil {
			return errors.New("exited with status 0")
		}
		return p.err
	default:
		return nil
	}
}

// Stop signals the process group and waits for it to exit, killing it after
// timeout. It returns once the process is gone.
func (p *Process) Stop(ctx context.Context, timeout time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	sig := p.spec.StopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s did not stop within %s; killed", p.spec.Name, timeout)
}

// Kill sends SIGKILL to the process group and waits for it to exit.
func (p *Process) Kill() error {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return nil
}

// waitFor polls check until it succeeds, the process exits, or timeout.
func waitFor(ctx context.Context, p *Process, timeout time.Duration, check func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		err := check(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%w: %s (%v); see %s:\n%s", ErrExitedStarting, p.spec.Name, p.Err(), p.spec.LogFile, tail(p.spec.LogFile, 8))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w; see %s", p.spec.Name, timeout, err, p.spec.LogFile)
		case <-tick.C:
		}
	}
}

// ErrExitedStarting is returned when a service exits before it is ready.
var ErrExitedStarting = errors.New("exited while starting")

// tail returns the last n lines of a log file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
