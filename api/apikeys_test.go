package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/registry"
	"github.com/syndb/federation/internal/store"
)

// forgetfulKeys authenticates through fakeStore and records the keys the
// API told it to forget.
type forgetfulKeys struct {
	mu     sync.Mutex
	forgot []int64
}

func (*forgetfulKeys) Authenticate(ctx context.Context, key string) (store.Principal, error) {
	return fakeStore{}.Authenticate(ctx, key)
}

func (f *forgetfulKeys) Forget(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, id)
}

// TestRevocationHereIsImmediate: a revocation or rotation made through
// this API drops the key from this process's cache at once, not when the
// notification comes back; a failed one drops nothing.
func TestRevocationHereIsImmediate(t *testing.T) {
	t.Parallel()
	reg, err := registry.New(t.Context(), fakeStore{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	keys := &forgetfulKeys{}
	s := New(config.API{PublicURL: "http://hub"}, Deps{Store: fakeStore{}, Keys: keys, Registry: reg, Log: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	for _, r := range []struct {
		method, path string
		status       int
	}{
		{http.MethodDelete, "/v1/apikeys/1", http.StatusOK},
		{http.MethodDelete, "/v1/apikeys/99", http.StatusNotFound},
		{http.MethodPost, "/v1/apikeys/1/rotate", http.StatusCreated},
		{http.MethodPost, "/v1/apikeys/2/rotate", http.StatusConflict},
	} {
		status, _, raw := do(t, srv, r.method, r.path, "Bearer "+goodKey, "")
		require.Equal(t, r.status, status, "%s %s: %s", r.method, r.path, raw)
	}
	require.Equal(t, []int64{1, 1}, keys.forgot)
}
