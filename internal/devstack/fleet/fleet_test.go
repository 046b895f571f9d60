package fleet

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/devstack"
)

// records is a slog sink the test reads back.
type records struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *records) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(b)
}

// restarts returns the "process exited, restarting" records of process name.
func (r *records) restarts(name string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(r.buf.Bytes(), []byte("\n")) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) == nil && rec["msg"] == "process exited, restarting" && rec["process"] == name {
			out = append(out, rec)
		}
	}
	return out
}

func ready(ctx context.Context, url string) bool { return httpOK(ctx, url+"/readyz") }

func httpOK(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// nodelessOptions builds syndb into a temporary directory and returns the
// test options of a federation without nodes there.
func nodelessOptions(t *testing.T) Options {
	t.Helper()
	root, err := devstack.RepoRoot()
	require.NoError(t, err)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "syndb")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/syndb")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	opts, err := TestOptions(root, filepath.Join(tmp, "fed"), bin)
	require.NoError(t, err)
	return opts
}

// TestSupervisedFederationRestartsAndGivesUp runs a federation without
// nodes under a restart policy: a killed worker comes back; a killed hub
// ClickHouse, PostgreSQL or Temporal comes back and the API is ready again;
// a killed MinIO comes back; and an API that keeps dying ends Wait within
// the policy's bound, after which Stop frees every port.
func TestSupervisedFederationRestartsAndGivesUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real federation")
	}
	opts := nodelessOptions(t)
	var logs records
	opts.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	opts.Restart = &devstack.RestartPolicy{Backoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second, MaxRestarts: 5,
		Window: time.Minute}
	ctx := t.Context()
	f, err := Start(ctx, opts)
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = f.Stop(context.Background())
		}
	})
	require.True(t, ready(ctx, f.APIURL))

	// kill -9 the worker: it is restarted and logged.
	worker, ok := f.HubPid("worker")
	require.True(t, ok)
	require.NoError(t, syscall.Kill(worker, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		pid, _ := f.HubPid("worker")
		return pid != worker && len(logs.restarts("worker")) == 1 && syscall.Kill(pid, 0) == nil
	}, time.Minute, 100*time.Millisecond)
	require.Equal(t, "signal: killed", logs.restarts("worker")[0]["status"])

	// kill -9 each service the API needs: it is not ready without it, then
	// ready again once the supervisor restarted it.
	for _, name := range []string{"clickhouse-hub", "postgres", "temporal"} {
		proc := f.Stack.Processes()[name]
		pid := proc.Pid()
		killedAt := time.Now()
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		require.Eventually(t, func() bool { return len(logs.restarts(name)) == 1 }, time.Minute, 50*time.Millisecond, name)
		require.Equal(t, "signal: killed", logs.restarts(name)[0]["status"], name)
		require.Eventually(t, func() bool { return proc.Pid() != pid && ready(ctx, f.APIURL) }, 2*time.Minute,
			200*time.Millisecond, "the API is not ready again after %s was restarted", name)
		t.Logf("%s killed: the API was ready again after %s", name, time.Since(killedAt).Round(100*time.Millisecond))
	}
	// MinIO answers its health check again.
	minio := f.Stack.MinIO.Process()
	minioPid := minio.Pid()
	require.NoError(t, syscall.Kill(minioPid, syscall.SIGKILL))
	live := fmt.Sprintf("http://127.0.0.1:%d/minio/health/live", opts.Ports.MinIO)
	require.Eventually(t, func() bool {
		return minio.Pid() != minioPid && len(logs.restarts("minio")) == 1 && httpOK(ctx, live)
	}, time.Minute, 100*time.Millisecond)

	// An API that dies every time it comes up crash-loops: Wait gives up
	// within the policy's bound and names it.
	loopStart := time.Now()
	waitErr := make(chan error, 1)
	go func() { waitErr <- f.Wait(ctx) }()
	deadline := time.After(2 * time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var killed []int
	for {
		select {
		case err := <-waitErr:
			require.ErrorIs(t, err, devstack.ErrCrashLoop)
			require.ErrorContains(t, err, "api exited")
			t.Logf("crash-looping api given up after %s: %v", time.Since(loopStart).Round(100*time.Millisecond), err)
			require.Len(t, logs.restarts("api"), 5, "restarts before giving up")
			require.LessOrEqual(t, len(killed), 6)
			// The worker, which exits when PostgreSQL or Temporal goes, was
			// restarted once they answered, not given up.
			t.Logf("worker restarts: %d", len(logs.restarts("worker")))
			// Then the supervisor tree stops the rest.
			require.NoError(t, f.Stop(ctx))
			stopped = true
			for _, p := range []int{opts.Ports.Postgres, opts.Ports.ClickHouseTCP, opts.Ports.Temporal, opts.Ports.MinIO,
				opts.APIPort, opts.HubFlightPort} {
				require.Eventually(t, func() bool { return devstack.PortFree(p) }, 30*time.Second, 50*time.Millisecond,
					"port %d still bound after Stop", p)
			}
			return
		case <-deadline:
			t.Fatalf("Wait did not give up on a crash-looping api (killed %v)", killed)
		case <-tick.C:
		}
		pid, ok := f.HubPid("api")
		if ok && (len(killed) == 0 || killed[len(killed)-1] != pid) && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
}

// TestTLSFederation runs a federation without nodes with Options.TLS, as
// `syndb dev --tls` does: the API answers HTTPS at its https:// URL to a
// client that trusts APICert, plain HTTP gets no API answer there, and the
// Flight port completes a TLS handshake with the same certificate.
func TestTLSFederation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real federation")
	}
	opts := nodelessOptions(t)
	opts.TLS = true
	f, err := Start(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, f.Stop(context.Background())) })

	require.Equal(t, fmt.Sprintf("https://127.0.0.1:%d", opts.APIPort), f.APIURL)
	require.Equal(t, filepath.Join(opts.Root, APICertFile), f.APICert)
	require.Equal(t, f.APIURL, f.Env["SYNDB_API_PUBLIC_URL"])
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.APIURL+"/readyz", nil)
	require.NoError(t, err)
	resp, err := f.APIClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, uint16(tls.VersionTLS13), resp.TLS.Version)
	require.False(t, httpOK(t.Context(), fmt.Sprintf("http://127.0.0.1:%d/readyz", opts.APIPort)), "plain HTTP on the TLS port")
	require.False(t, httpOK(t.Context(), f.APIURL+"/readyz"), "a client that does not trust the certificate")

	pool := f.APIClient.Transport.(*http.Transport).TLSClientConfig.RootCAs
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}}
	conn, err := d.DialContext(t.Context(), "tcp", f.Env["SYNDB_API_FLIGHT_ADDR"])
	require.NoError(t, err, "the Flight server serves TLS with the API's certificate")
	state := conn.(*tls.Conn).ConnectionState()
	require.Equal(t, "h2", state.NegotiatedProtocol)
	_ = conn.Close()
}
