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
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
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
	// BeforeRestart, when set, is polled after a supervised run's backoff
	// until it succeeds (for at most the policy's window): a process is
	// restarted once what it depends on answers again, so an outage of a
	// dependency costs it one exit rather than a crash loop.
	BeforeRestart func(ctx context.Context) error
}

// Process is a child process. It runs in its own process group and is
// killed if the parent dies. Once Supervise is called, a run that ends on
// its own is started again with backoff, until it crash-loops.
type Process struct {
	spec   ProcessSpec
	done   chan struct{}
	stopCh chan struct{}

	mu       sync.Mutex
	cmd      *exec.Cmd
	stopping bool
	policy   *RestartPolicy
	log      *slog.Logger
	restarts []time.Time
	err      error
}

// run is one start of a process: its command and output plumbing.
type run struct {
	cmd  *exec.Cmd
	logf *os.File
	pw   *io.PipeWriter
	cp   sync.WaitGroup
}

var outMu sync.Mutex

// StartProcess starts spec.
func StartProcess(_ context.Context, spec ProcessSpec) (*Process, error) {
	p := &Process{spec: spec, done: make(chan struct{}), stopCh: make(chan struct{})}
	r, err := p.launch()
	if err != nil {
		return nil, err
	}
	p.cmd = r.cmd
	go p.watch(r)
	return p, nil
}

// launch starts one run of the process.
func (p *Process) launch() (*run, error) {
	spec := p.spec
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
	r := &run{cmd: cmd, logf: logf}
	if spec.Out != nil {
		var pr *io.PipeReader
		pr, r.pw = io.Pipe()
		cmd.Stdout, cmd.Stderr = r.pw, r.pw
		r.cp.Go(func() { p.copyLines(logf, pr) })
	} else {
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	if err := cmd.Start(); err != nil {
		if r.pw != nil {
			_ = r.pw.Close()
			r.cp.Wait()
		}
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	return r, nil
}

// wait waits for the run to exit and its output to be copied.
func (r *run) wait() error {
	err := r.cmd.Wait()
	if r.pw != nil {
		_ = r.pw.Close()
	}
	r.cp.Wait()
	_ = r.logf.Close()
	return err
}

// watch waits for each run to exit, and restarts the process while it is
// supervised, not being stopped and not crash-looping.
func (p *Process) watch(r *run) {
	for {
		started := time.Now()
		err := r.wait()
		// What the run left behind in its group (a server's workers) must
		// not hold its ports against the next run.
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		backoff, attempt, giveUp, ok := p.next(err, time.Since(started))
		if !ok {
			return
		}
		if giveUp != nil {
			p.finish(giveUp)
			return
		}
		p.log.Warn("process exited, restarting", "process", p.spec.Name, "status", exitStatus(err),
			"attempt", attempt, "backoff", backoff, "log", p.spec.LogFile)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-p.stopCh:
			t.Stop()
			p.finish(err)
			return
		}
		if !p.awaitDependencies() {
			p.finish(err)
			return
		}
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			p.finish(err)
			return
		}
		next, lerr := p.launch()
		if lerr != nil {
			p.mu.Unlock()
			p.log.Error("process could not be restarted", "process", p.spec.Name, "err", lerr)
			p.finish(lerr)
			return
		}
		p.cmd = next.cmd
		p.mu.Unlock()
		r = next
	}
}

// awaitDependencies polls spec.BeforeRestart until it succeeds or the
// policy's window passed; it returns false when the process is stopped
// meanwhile.
func (p *Process) awaitDependencies() bool {
	if p.spec.BeforeRestart == nil {
		return true
	}
	p.mu.Lock()
	window := p.policy.Window
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for logged := false; ; {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.spec.BeforeRestart(cctx)
		ccancel()
		if err == nil {
			return true
		}
		if !logged {
			p.log.Warn("process waits for its dependencies before restarting", "process", p.spec.Name, "err", err)
			logged = true
		}
		select {
		case <-p.stopCh:
			return false
		case <-ctx.Done():
			return true
		case <-tick.C:
		}
	}
}

// next decides what follows a run that ended with err after ran: ok is
// false when the process is finished (stopped or unsupervised, and then
// finish was called); otherwise giveUp is the reason to stop restarting,
// or backoff and attempt describe the restart.
func (p *Process) next(err error, ran time.Duration) (backoff time.Duration, attempt int, giveUp error, ok bool) {
	p.mu.Lock()
	if p.stopping || p.policy == nil {
		p.mu.Unlock()
		p.finish(err)
		return 0, 0, nil, false
	}
	pol := *p.policy
	now := time.Now()
	var restarts int
	p.restarts, restarts, backoff = pol.next(p.restarts, now)
	p.mu.Unlock()
	if restarts > pol.MaxRestarts {
		giveUp = fmt.Errorf("%w: %s exited %d times within %s (last: %s after %s)", ErrCrashLoop, p.spec.Name,
			restarts, pol.Window, exitStatus(err), ran.Round(time.Millisecond))
		p.log.Error("process is crash-looping, giving up", "process", p.spec.Name, "status", exitStatus(err),
			"restarts", restarts-1, "window", pol.Window, "log", p.spec.LogFile)
		return 0, 0, giveUp, true
	}
	return backoff, restarts, nil, true
}

func (p *Process) finish(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	close(p.done)
}

// ErrCrashLoop is the end of a supervised process that kept exiting.
var ErrCrashLoop = errors.New("crash loop")

// RestartPolicy is how a supervised process is restarted: after Backoff,
// doubled for every restart within Window up to MaxBackoff; a process that
// exits more than MaxRestarts times within Window is given up.
type RestartPolicy struct {
	Backoff, MaxBackoff time.Duration
	MaxRestarts         int
	Window              time.Duration
}

// DefaultRestartPolicy restarts after 0.5 s, 1 s, 2 s, … (at most 10 s) and
// gives up on a sixth exit within a minute.
var DefaultRestartPolicy = RestartPolicy{Backoff: 500 * time.Millisecond, MaxBackoff: 10 * time.Second, MaxRestarts: 5,
	Window: time.Minute}

// next records an exit at now among the earlier ones (kept within the
// window) and returns them, how many there are, and the backoff before the
// restart.
func (r RestartPolicy) next(exits []time.Time, now time.Time) (kept []time.Time, n int, backoff time.Duration) {
	kept = exits[:0]
	for _, t := range exits {
		if now.Sub(t) < r.Window {
			kept = append(kept, t)
		}
	}
	kept = append(kept, now)
	n = len(kept)
	backoff = r.Backoff
	for i := 1; i < n && backoff < r.MaxBackoff; i++ {
		backoff *= 2
	}
	return kept, n, min(backoff, r.MaxBackoff)
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Supervise makes the process restart when it exits on its own, logging
// each restart to log, until it exits more often than policy allows.
func (p *Process) Supervise(policy RestartPolicy, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.policy, p.log = &policy, log
}

// Name is the process's name.
func (p *Process) Name() string { return p.spec.Name }

// LogFile is where the process's output goes.
func (p *Process) LogFile() string { return p.spec.LogFile }

func (p *Process) copyLines(logf *os.File, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = logf.Write(append(line, '\n'))
		outMu.Lock()
		_, _ = fmt.Fprintf(p.spec.Out, "[%s] %s\n", p.spec.Name, line)
		outMu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// Pid returns the process ID of the current run.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Done is closed when the process has exited for good: stopped, exited
// unsupervised, or given up.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit error, valid after Done.
func (p *Process) Err() error {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.err == nil {
			return errors.New("exited with status 0")
		}
		return p.err
	default:
		return nil
	}
}

// halt marks the process as stopping (no more restarts) and signals its
// current run's group.
func (p *Process) halt(sig syscall.Signal) {
	p.mu.Lock()
	if !p.stopping {
		p.stopping = true
		close(p.stopCh)
	}
	pid := p.cmd.Process.Pid
	p.mu.Unlock()
	_ = syscall.Kill(-pid, sig)
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
	p.halt(sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	p.halt(syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s did not stop within %s; killed", p.spec.Name, timeout)
}

// Kill sends SIGKILL to the process group and waits for it to exit; it is
// not restarted.
func (p *Process) Kill() error {
	p.halt(syscall.SIGKILL)
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

// WaitAny blocks until ctx ends (nil) or one of procs is done for good: it
// exited unsupervised, or crash-looped. The error names it and why.
func WaitAny(ctx context.Context, procs map[string]*Process) error {
	cases := make([]reflect.SelectCase, 0, len(procs)+1)
	names := make([]string, 0, len(procs))
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
	for name, p := range procs {
		names = append(names, name)
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(p.Done())})
	}
	i, _, _ := reflect.Select(cases)
	if i == 0 {
		return nil
	}
	p := procs[names[i-1]]
	return fmt.Errorf("%s exited: %w (see %s)", names[i-1], p.Err(), p.LogFile())
}
