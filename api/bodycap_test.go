package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// countingBody is a request body of n bytes of JSON-ish text that counts
// what was read of it.
type countingBody struct {
	left, read atomic.Int64
}

func newCountingBody(n int64) *countingBody {
	b := &countingBody{}
	b.left.Store(n)
	return b
}

func (b *countingBody) Read(p []byte) (int, error) {
	left := b.left.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), left)
	for i := range n {
		p[i] = ' '
	}
	b.left.Add(-n)
	b.read.Add(n)
	return int(n), nil
}

func (b *countingBody) Close() error { return nil }

// unreadable is a body that fails the test if anything reads it.
type unreadable struct{ t *testing.T }

func (u unreadable) Read([]byte) (int, error) {
	u.t.Error("the body was read")
	return 0, errors.New("must not be read")
}

func (unreadable) Close() error { return nil }

// TestBodyCaps: a body over its route's cap is a 413 body_too_large: at
// once, unread, when Content-Length says so; after at most cap+1 bytes
// when its length is unknown. A body at the cap passes.
func TestBodyCaps(t *testing.T) {
	t.Parallel()
	s, _ := limitedServer(t, zeroLimits)
	serve := func(req *http.Request) (int, ErrorBody) {
		req.Header.Set("Authorization", "Bearer "+goodKey)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		var eb ErrorBody
		if rec.Code >= 400 {
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &eb), rec.Body.String())
		}
		return rec.Code, eb
	}
	for _, tc := range []struct {
		path  string
		limit int64
	}{
		{"/v1/query", bodyQuery},
		{"/v1/federation/schema/sync", bodySmall},
		{"/v1/jobs", bodyJob},
	} {
		t.Run(tc.path, func(t *testing.T) {
			req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, tc.path, nil)
			req.Body, req.ContentLength = unreadable{t}, 64<<20
			status, eb := serve(req)
			require.Equal(t, http.StatusRequestEntityTooLarge, status)
			require.Equal(t, codeBodyTooLarge, eb.Error.Code)
			require.Contains(t, eb.Error.Message, "at most")

			body := newCountingBody(64 << 20)
			req = httptest.NewRequestWithContext(t.Context(), http.MethodPost, tc.path, nil)
			req.Body, req.ContentLength = body, -1
			status, eb = serve(req)
			require.Equal(t, http.StatusRequestEntityTooLarge, status)
			require.Equal(t, codeBodyTooLarge, eb.Error.Code)
			require.LessOrEqual(t, body.read.Load(), tc.limit+1, "read one byte past the cap, not the 64 MiB")

			// At the cap: past the cap check (the handler then finds no
			// JSON in the spaces).
			req = httptest.NewRequestWithContext(t.Context(), http.MethodPost, tc.path, strings.NewReader(strings.Repeat(" ", int(tc.limit))))
			status, _ = serve(req)
			require.NotEqual(t, http.StatusRequestEntityTooLarge, status)
		})
	}
}
