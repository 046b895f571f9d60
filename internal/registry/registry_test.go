package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

// waitFor bounds every poll: generous, since -race on a busy machine is slow.
const waitFor = 10 * time.Second

// fakeLoader serves clusters the test sets. It returns its own slice (not a
// copy), so tests also see whether the registry aliases the loader's memory.
type fakeLoader struct {
	mu       sync.Mutex
	clusters []domain.Cluster
	err      error
	// gate, when set, runs in every load after it has read the data (outside
	// mu); the load fails with its error.
	gate func(ctx context.Context) error

	calls      atomic.Int64
	activeOnly atomic.Bool // set if any load asked for active clusters only
}

func (f *fakeLoader) Clusters(ctx context.Context, activeOnly bool) ([]domain.Cluster, error) {
	f.calls.Add(1)
	if activeOnly {
		f.activeOnly.Store(true)
	}
	f.mu.Lock()
	clusters, err, gate := f.clusters, f.err, f.gate
	f.mu.Unlock()
	// Like a query, a load sees the data as it was when it began.
	if gate != nil {
		if err := gate(ctx); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	return clusters, nil
}

func (f *fakeLoader) set(clusters []domain.Cluster, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clusters, f.err = clusters, err
}

// edit changes the loader's clusters in place.
func (f *fakeLoader) edit(fn func([]domain.Cluster)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.clusters)
}

func (f *fakeLoader) setGate(gate func(ctx context.Context) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = gate
}

// fakeNotifier delivers the payloads the test sends on ch, like
// store.Listen: it blocks until ctx ends.
type fakeNotifier struct {
	ch chan string
	// hold, when set, keeps Listen from returning, after ctx has ended,
	// until it is closed.
	hold      chan struct{}
	delivered atomic.Int64 // payloads handed to fn
	listening atomic.Int64 // Listen calls still running
	channel   atomic.Pointer[string]
}

func newFakeNotifier() *fakeNotifier {
	return &fakeNotifier{ch: make(chan string)}
}

func (f *fakeNotifier) Listen(ctx context.Context, channel string, fn func(payload string), onErr func(error)) {
	f.listening.Add(1)
	defer f.listening.Add(-1)
	f.channel.Store(&channel)
	for {
		select {
		case <-ctx.Done():
			if f.hold != nil {
				<-f.hold
			}
			return
		case p := <-f.ch:
			fn(p)
			f.delivered.Add(1)
		}
	}
}

// notify delivers one payload, failing the test if nobody listens in time.
func (f *fakeNotifier) notify(t *testing.T, payload string) {
	t.Helper()
	select {
	case f.ch <- payload:
	case <-time.After(waitFor):
		t.Fatal("notification not received: is Run listening?")
	}
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func cluster(name, health string) domain.Cluster {
	return domain.Cluster{
		Name: name, PeerID: "peer-" + name, Addrs: []string{"/ip4/10.0.0.1/tcp/4001"},
		Status: "active", Health: health,
	}
}

// startRun runs r until the test ends (or the returned cancel is called) and
// returns a channel closed when Run has returned.
func startRun(t *testing.T, r *Registry, n Notifier, resync time.Duration) (context.CancelFunc, <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx, n, resync)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return cancel, done
}

func names(cs []domain.Cluster) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

func health(t *testing.T, s *Snapshot, name string) string {
	t.Helper()
	c, ok := s.Get(name)
	require.True(t, ok, "cluster %q missing from snapshot %d", name, s.Version)
	return c.Health
}

func TestNewLoadsAllClustersSortedByName(t *testing.T) {
	t.Parallel()
	revoked := cluster("lab-b", "unknown")
	revoked.Status = "revoked"
	l := &fakeLoader{}
	l.set([]domain.Cluster{cluster("lab-c", "healthy"), revoked, cluster("lab-a", "degraded")}, nil)
	before := time.Now()

	r, err := New(t.Context(), l, nil)
	require.NoError(t, err)

	s := r.Snapshot()
	require.NotNil(t, s)
	require.Equal(t, uint64(1), s.Version)
	require.False(t, s.Loaded.Before(before))
	require.Equal(t, 3, s.Len())
	require.Equal(t, []string{"lab-a", "lab-b", "lab-c"}, names(s.All()))
	require.False(t, l.activeOnly.Load(), "revoked clusters must be loaded too")

	tests := []struct {
		name   string
		found  bool
		status string
		health string
	}{
		{name: "lab-a", found: true, status: "active", health: "degraded"},
		{name: "lab-b", found: true, status: "revoked", health: "unknown"},
		{name: "lab-c", found: true, status: "active", health: "healthy"},
		{name: "lab-z", found: false},
		{name: "", found: false},
	}
	for _, tt := range tests {
		c, ok := s.Get(tt.name)
		require.Equal(t, tt.found, ok, tt.name)
		if !tt.found {
			require.Zero(t, c, tt.name)
			continue
		}
		require.Equal(t, tt.name, c.Name)
		require.Equal(t, tt.status, c.Status, tt.name)
		require.Equal(t, tt.health, c.Health, tt.name)
	}
}

func TestNewEmptyRegistry(t *testing.T) {
	t.Parallel()
	r, err := New(t.Context(), &fakeLoader{}, nil)
	require.NoError(t, err)
	require.Zero(t, r.Snapshot().Len())
	require.Empty(t, r.Snapshot().All())
	_, ok := r.Snapshot().Get("lab-a")
	require.False(t, ok)
}

func TestNewFailsWhenFirstLoadFails(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection refused")
	l := &fakeLoader{}
	l.set(nil, boom)

	r, err := New(t.Context(), l, nil)
	require.ErrorIs(t, err, boom)
	require.Nil(t, r)
}

func TestNotificationRefreshes(t *testing.T) {
	t.Parallel()
	l := &fakeLoader{}
	l.set([]domain.Cluster{cluster("lab-a", "unknown")}, nil)
	r, err := New(t.Context(), l, nil)
	require.NoError(t, err)
	n := newFakeNotifier()
	startRun(t, r, n, time.Hour) // the resync never fires here

	l.set([]domain.Cluster{cluster("lab-a", "healthy"), cluster("lab-b", "unknown")}, nil)
	n.notify(t, "UPDATE")

	require.Eventually(t, func() bool { return r.Snapshot().Version >= 2 }, waitFor, time.Millisecond)
	s := r.Snapshot()
	require.Equal(t, 2, s.Len())
	require.Equal(t, "healthy", health(t, s, "lab-a"))
	require.Equal(t, store.RegistryChannel, *n.channel.Load())
}

func TestResyncRefreshesWithoutNotifications(t *testing.T) {
	t.Parallel()
	l := &fakeLoader{}
	l.set([]domain.Cluster{cluster("lab-a", "unknown")}, nil)
	r, err := New(t.Context(), l, nil)
	require.NoError(t, err)
	n := newFakeNotifier()
	startRun(t, r, n, 5*time.Millisecond)

	l.set([]domain.Cluster{cluster("lab-a", "unreachable")}, nil)

	require.Eventually(t, func() bool {
		c, _ := r.Snapshot().Get("lab-a")
		return c.Health == "unreachable"
	}, waitFor, time.Millisecond)
	require.GreaterOrEqual(t, r.Snapshot().Version, uint64(2))
	require.Zero(t, n.delivered.Load())
}

func TestFailedLoadKeepsPreviousSnapshot(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	l := &fakeLoader{}
	l.set([]domain.Cluster{cluster("lab-a", "healthy")}, nil)
	r, err := New(t.Context(), l, testLogger(&logs))
	require.NoError(t, err)
	first := r.Snapshot()

	// Refresh returns the error and keeps the snapshot.
	boom := errors.New("connection reset")
	l.set(nil, boom)
	require.ErrorIs(t, r.Refresh(t.Context()), boom)
	require.Same(t, first, r.Snapshot())

	// Run logs a warning and keeps the snapshot.
	n := newFakeNotifier()
	startRun(t, r, n, time.Hour)
	calls := l.calls.Load()
	n.notify(t, "UPDATE")
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "registry refresh failed")
	}, waitFor, time.Millisecond)
	require.Greater(t, l.calls.Load(), calls)
	require.Contains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), "connection reset")
	require.Same(t, first, r.Snapshot())
	require.Equal(t, "healthy", health(t, r.Snapshot(), "lab-a"))

	// Once the source recovers, the next notification refreshes.
	l.set([]domain.Cluster{cluster("lab-a", "degraded")}, nil)
	n.notify(t, "UPDATE")
	require.Eventually(t, func() bool { return r.Snapshot().Version == 2 }, waitFor, time.Millisecond)
	require.Equal(t, "degraded", health(t, r.Snapshot(), "lab-a"))
}

func TestSnapshotsNeverChange(t *testing.T) {
	t.Parallel()
	a := cluster("lab-a", "healthy")
	a.Drift = &domain.Drift{Version: 3, Reason: "checksum"}
	l := &fakeLoader{}
	l.set([]domain.Cluster{a, cluster("lab-b", "healthy")}, nil)
	r, err := New(t.Context(), l, nil)
	require.NoError(t, err)

	old := r.Snapshot()
	want := make([]domain.Cluster, old.Len())
	for i, c := range old.All() {
		want[i] = cloneCluster(c)
	}
	wantVersion, wantLoaded := old.Version, old.Loaded

	// The loader's memory is not the snapshot's: editing it in place (as a
	// loader reusing its buffers would) changes nothing handed out.
	l.edit(func(cs []domain.Cluster) {
		cs[0].Health = "unreachable"
		cs[0].Addrs[0] = "/ip4/10.9.9.9/tcp/1"
		cs[0].Drift.Version = 99
	})
	require.Equal(t, want, old.All())

	// Nor does a refresh: it builds a new snapshot.
	l.set([]domain.Cluster{cluster("lab-b", "degraded"), cluster("lab-c", "unknown")}, nil)
	require.NoError(t, r.Refresh(t.Context()))

	require.Equal(t, want, old.All())
	require.Equal(t, wantVersion, old.Version)
	require.Equal(t, wantLoaded, old.Loaded)
	require.Equal(t, "healthy", health(t, old, "lab-a"))
	_, ok := old.Get("lab-c")
	require.False(t, ok)

	cur := r.Snapshot()
	require.NotSame(t, old, cur)
	require.Equal(t, wantVersion+1, cur.Version)
	require.Equal(t, []string{"lab-b", "lab-c"}, names(cur.All()))
	_, ok = cur.Get("lab-a")
	require.False(t, ok)
}

func TestRunReturnsWhenCancelled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// loadInFlight cancels while a reload is blocked in the loader.
		loadInFlight bool
	}{
		{name: "idle"},
		{name: "load in flight", loadInFlight: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := &fakeLoader{}
			r, err := New(t.Context(), l, nil)
			require.NoError(t, err)
			n := newFakeNotifier()
			cancel, done := startRun(t, r, n, time.Hour)

			if tt.loadInFlight {
				started := make(chan struct{})
				l.setGate(func(ctx context.Context) error {
					close(started)
					<-ctx.Done()
					return ctx.Err()
				})
				n.notify(t, "INSERT")
				<-started
			} else {
				n.notify(t, "INSERT") // proves the listener is up
			}

			cancel()
			select {
			case <-done:
			case <-time.After(waitFor):
				t.Fatal("Run did not return after its context was cancelled")
			}
			require.Zero(t, n.listening.Load(), "Run returned before its listener")
		})
	}
}

func TestRunWaitsForItsListener(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r, err := New(t.Context(), &fakeLoader{}, nil)
		require.NoError(t, err)
		n := newFakeNotifier()
		n.hold = make(chan struct{})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.Run(ctx, n, time.Hour)
		}()
		synctest.Wait()
		require.Equal(t, int64(1), n.listening.Load())

		cancel()
		synctest.Wait() // every goroutine has done all it can
		select {
		case <-done:
			t.Fatal("Run returned while its listener was still running")
		default:
		}
		close(n.hold)
		<-done
		require.Zero(t, n.listening.Load())
	})
}

func TestBurstOfNotificationsCoalesces(t *testing.T) {
	t.Parallel()
	l := &fakeLoader{}
	l.set([]domain.Cluster{cluster("lab-a", "unknown")}, nil)
	r, err := New(t.Context(), l, nil)
	require.NoError(t, err)
	n := newFakeNotifier()
	startRun(t, r, n, time.Hour)

	// Hold the first reload in the loader while the burst arrives.
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	l.setGate(func(ctx context.Context) error {
		once.Do(func() { close(started) })
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	const burst = 100
	n.notify(t, "UPDATE")
	<-started
	// The in-flight load has read the table; this change must still land.
	l.set([]domain.Cluster{cluster("lab-a", "healthy")}, nil)
	for range burst - 1 {
		n.notify(t, "UPDATE")
	}
	require.Eventually(t, func() bool { return n.delivered.Load() == burst }, waitFor, time.Millisecond)
	close(release)

	// The reload in flight, then the one queued behind it: 2 loads for 100
	// notifications.
	require.Eventually(t, func() bool { return r.Snapshot().Version == 3 }, waitFor, time.Millisecond)
	require.Equal(t, int64(1+2), l.calls.Load()) // New, then Run's two
	require.Equal(t, "healthy", health(t, r.Snapshot(), "lab-a"))
}

func TestConcurrentReadsAndRefreshes(t *testing.T) {
	t.Parallel()
	l := &fakeLoader{}
	l.set([]domain.Cluster{cluster("lab-a", "healthy"), cluster("lab-b", "healthy")}, nil)
	r, err := New(t.Context(), l, nil)
	require.NoError(t, err)

	const (
		readers   = 8
		refreshes = 50
	)
	stop := make(chan struct{})
	errs := make(chan error, readers+refreshes)
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			var last uint64
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				s := r.Snapshot()
				if s.Version < last {
					errs <- errors.New("snapshot version went backwards")
					return
				}
				last = s.Version
				if _, ok := s.Get("lab-a"); !ok || s.Len() != 2 {
					errs <- errors.New("snapshot lost a cluster")
					return
				}
			}
		})
	}
	var refreshers sync.WaitGroup
	for range refreshes {
		refreshers.Go(func() {
			if err := r.Refresh(t.Context()); err != nil {
				errs <- err
			}
		})
	}
	refreshers.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, uint64(1+refreshes), r.Snapshot().Version)
}

func TestRefreshHonoursContextWhileAnotherRuns(t *testing.T) {
	t.Parallel()
	l := &fakeLoader{}
	r, err := New(t.Context(), l, nil)
	require.NoError(t, err)

	started, release := make(chan struct{}), make(chan struct{})
	l.setGate(func(ctx context.Context) error {
		close(started)
		<-release
		return nil
	})
	first := make(chan error, 1)
	go func() { first <- r.Refresh(t.Context()) }()
	<-started

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, r.Refresh(ctx), context.Canceled)

	l.setGate(nil)
	close(release)
	require.NoError(t, <-first)
	require.Equal(t, uint64(2), r.Snapshot().Version)
}
