package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// logRecords is a slog sink the tests read back.
type logRecords struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logRecords) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *logRecords) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

// with returns the records whose message is msg.
func (l *logRecords) with(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(l.buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r map[string]any
		require.NoError(t, json.Unmarshal(line, &r))
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func startSh(t *testing.T, name, script string) *Process {
	t.Helper()
	p, err := StartProcess(t.Context(), ProcessSpec{Name: name, Path: "/bin/sh", Args: []string{"-c", script},
		LogFile: filepath.Join(t.TempDir(), name+".log")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Kill() })
	return p
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestRestartPolicyBacksOffAndForgetsOldExits(t *testing.T) {
	t.Parallel()
	pol := RestartPolicy{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxRestarts: 5, Window: time.Minute}
	t0 := time.Unix(1000, 0)
	var exits []time.Time
	// Hand-computed: 100ms doubled per exit within the window, capped at 1s.
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		time.Second, time.Second}
	for i, w := range want {
		var n int
		var b time.Duration
		exits, n, b = pol.next(exits, t0.Add(time.Duration(i)*time.Second))
		require.Equal(t, i+1, n)
		require.Equal(t, w, b, "exit %d", i+1)
	}
	// Two minutes later the earlier exits are outside the window.
	exits, n, b := pol.next(exits, t0.Add(2*time.Minute))
	require.Equal(t, 1, n)
	require.Equal(t, 100*time.Millisecond, b)
	require.Len(t, exits, 1)
}

func TestSupervisedProcessIsRestartedAfterKill(t *testing.T) {
	t.Parallel()
	var logs logRecords
	p := startSh(t, "sleeper", "exec sleep 600")
	p.Supervise(RestartPolicy{Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxRestarts: 5, Window: time.Minute},
		logs.logger())
	first := p.Pid()
	require.NoError(t, syscall.Kill(first, syscall.SIGKILL))
	require.Eventually(t, func() bool { return p.Pid() != first && alive(p.Pid()) }, 10*time.Second, 10*time.Millisecond)
	select {
	case <-p.Done():
		t.Fatal("a restarted process is not done")
	default:
	}
	recs := logs.with(t, "process exited, restarting")
	require.Len(t, recs, 1)
	require.Equal(t, "sleeper", recs[0]["process"])
	require.Equal(t, "signal: killed", recs[0]["status"])
	require.EqualValues(t, 1, recs[0]["attempt"])
	require.NotEmpty(t, recs[0]["backoff"])

	// Stop ends it for good: no restart follows.
	second := p.Pid()
	require.NoError(t, p.Stop(t.Context(), 5*time.Second))
	<-p.Done()
	require.False(t, alive(second))
	require.Len(t, logs.with(t, "process exited, restarting"), 1)
}

func TestCrashLoopingProcessIsGivenUpWithinTheBound(t *testing.T) {
	t.Parallel()
	var logs logRecords
	// It fails only after Supervise, as a service does after it was ready.
	p := startSh(t, "crasher", "sleep 0.2; exit 3")
	pol := RestartPolicy{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, MaxRestarts: 3, Window: time.Minute}
	p.Supervise(pol, logs.logger())
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("a crash-looping process was not given up")
	}
	require.ErrorIs(t, p.Err(), ErrCrashLoop)
	require.ErrorContains(t, p.Err(), "exit status 3")
	restarts := logs.with(t, "process exited, restarting")
	require.Len(t, restarts, 3)
	for i, r := range restarts {
		require.EqualValues(t, i+1, r["attempt"])
		require.Equal(t, "exit status 3", r["status"])
	}
	gaveUp := logs.with(t, "process is crash-looping, giving up")
	require.Len(t, gaveUp, 1)
	require.Equal(t, "crasher", gaveUp[0]["process"])
}

func TestUnsupervisedProcessIsNotRestarted(t *testing.T) {
	t.Parallel()
	p := startSh(t, "once", "exit 2")
	<-p.Done()
	require.ErrorContains(t, p.Err(), "exit status 2")
}

func TestWaitAnyStopsAtTheFirstProcessGivenUp(t *testing.T) {
	t.Parallel()
	var logs logRecords
	pol := RestartPolicy{Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxRestarts: 2, Window: time.Minute}
	steady := startSh(t, "steady", "exec sleep 600")
	crasher := startSh(t, "crasher", "sleep 0.2; exit 1")
	steady.Supervise(pol, logs.logger())
	crasher.Supervise(pol, logs.logger())
	procs := map[string]*Process{"steady": steady, "crasher": crasher}
	err := WaitAny(t.Context(), procs)
	require.ErrorIs(t, err, ErrCrashLoop)
	require.ErrorContains(t, err, "crasher exited")
	// What a supervisor tree does then: stop the rest.
	pid := steady.Pid()
	require.True(t, alive(pid))
	require.NoError(t, steady.Stop(t.Context(), 5*time.Second))
	require.False(t, alive(pid))
}

func TestRestartWaitsForDependencies(t *testing.T) {
	t.Parallel()
	var logs logRecords
	var up atomic.Bool
	p, err := StartProcess(t.Context(), ProcessSpec{Name: "dependent", Path: "/bin/sh", Args: []string{"-c", "exec sleep 600"},
		LogFile: filepath.Join(t.TempDir(), "dependent.log"),
		BeforeRestart: func(context.Context) error {
			if !up.Load() {
				return errors.New("dependency down")
			}
			return nil
		}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Kill() })
	p.Supervise(RestartPolicy{Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxRestarts: 1, Window: time.Minute},
		logs.logger())
	first := p.Pid()
	require.NoError(t, syscall.Kill(first, syscall.SIGKILL))
	require.Eventually(t, func() bool { return len(logs.with(t, "process waits for its dependencies before restarting")) == 1 },
		10*time.Second, 10*time.Millisecond)
	require.Equal(t, first, p.Pid(), "not restarted while its dependency is down")
	up.Store(true)
	require.Eventually(t, func() bool { return p.Pid() != first && alive(p.Pid()) }, 10*time.Second, 10*time.Millisecond)
	select {
	case <-p.Done():
		t.Fatal("waiting for a dependency is not an exit")
	default:
	}
}
