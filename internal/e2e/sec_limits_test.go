package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/store"
)

// callAt calls the API at base with key (none when empty) and reads the
// whole answer.
func callAt(t *testing.T, base, key, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, raw
}

// requireRetryAfter checks a 429 of code with a Retry-After of at least a
// second and at most most seconds, and returns it.
func requireRetryAfter(t *testing.T, status int, h http.Header, raw []byte, code string, most int) time.Duration {
	t.Helper()
	requireError(t, http.StatusTooManyRequests, status, raw, code, "over the limit")
	after, err := strconv.Atoi(h.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q", h.Get("Retry-After"))
	require.GreaterOrEqual(t, after, 1)
	require.LessOrEqual(t, after, most)
	return time.Duration(after) * time.Second
}

// TestSecKeyRateLimit: on an API replica allowing a key 1 request a second
// in bursts of 3, the key's fourth call at once is a 429 with Retry-After
// and the rate_limited error; another key and the public routes are not
// held back; polling (each refused poll takes no token) the key is served
// again within Retry-After; the refused call is audited as refused.
func TestSecKeyRateLimit(t *testing.T) {
	replica := startAPIReplica(t, map[string]string{"SYNDB_KEY_RATE": "1", "SYNDB_KEY_BURST": "3"})
	k := newKey(t, "rate", store.RoleReader)
	other := newKey(t, "rate-other", store.RoleReader)
	const explain = `{"sql": "SELECT count() AS n FROM neuron"}`
	for i := range 3 {
		status, _, raw := callAt(t, replica, k.key, http.MethodPost, "/v1/query/explain", explain)
		require.Equal(t, http.StatusOK, status, "call %d of the burst: %s", i, raw)
	}
	status, h, raw := callAt(t, replica, k.key, http.MethodPost, "/v1/query/explain", explain)
	refusedAt := time.Now()
	wait := requireRetryAfter(t, status, h, raw, "rate_limited", 1)
	refusedID := h.Get("X-Request-Id")
	require.NotEmpty(t, refusedID)

	status, _, raw = callAt(t, replica, other.key, http.MethodPost, "/v1/query/explain", explain)
	require.Equal(t, http.StatusOK, status, "another key has its own bucket: %s", raw)
	for range 10 {
		status, _, raw := callAt(t, replica, "", http.MethodGet, "/healthz", "")
		require.Equal(t, http.StatusOK, status, "the public routes are not limited: %s", raw)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	refusals := 0
	require.NoError(t, pollUntil(ctx, func() error {
		status, h, raw := callAt(t, replica, k.key, http.MethodGet, "/v1/federation/clusters", "")
		if status == http.StatusTooManyRequests {
			requireRetryAfter(t, status, h, raw, "rate_limited", 1)
			refusals++
			return fmt.Errorf("still limited: %s", raw)
		}
		require.Equal(t, http.StatusOK, status, string(raw))
		return nil
	}))
	served := time.Since(refusedAt)
	t.Logf("served again %s after the 429 (Retry-After %s), after %d refused polls", served, wait, refusals)
	require.Less(t, served, wait+time.Second, "the refused polls took no token: served within Retry-After")

	// The refused call is in the audit log, refused with its 429.
	actx, acancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer acancel()
	require.NoError(t, pollUntil(actx, func() error {
		for _, e := range auditOf(t, fmt.Sprintf("?key_id=%d&outcome=refused", k.id)) {
			if e.RequestID == refusedID {
				require.Equal(t, http.StatusTooManyRequests, e.Status)
				require.Equal(t, "/v1/query/explain", e.Route)
				return nil
			}
		}
		return fmt.Errorf("no audit entry of request %s", refusedID)
	}))
}

// slowQuery answers about a million rows of tens of bytes each: a client
// that reads none of it holds the query open, its answer stuck in the
// connection's buffers (see ensureVesicles).
const slowQuery = `{"sql": "SELECT cid, voxel_volume, centroid_x FROM vesicle"}`

// openQuery starts a federated query on the API at base and returns its
// answer unread.
func openQuery(t *testing.T, base, key, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/v1/query", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// TestSecKeyQueryLimit: on an API replica allowing a key 2 federated
// queries at once, while two of its queries stream (their answers unread)
// a third is a 429 too_many_queries with Retry-After, and another key's
// query runs; once the client of one goes away, the key is served again.
func TestSecKeyQueryLimit(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	ensureVesicles(t, 3_000_000)
	replica := startAPIReplica(t, map[string]string{"SYNDB_KEY_MAX_QUERIES": "2"})
	k := newKey(t, "queries", store.RoleReader)
	other := newKey(t, "queries-other", store.RoleReader)
	const small = `{"sql": "SELECT count() AS n FROM neuron"}`

	first := openQuery(t, replica, k.key, slowQuery)
	require.Equal(t, http.StatusOK, first.StatusCode)
	second := openQuery(t, replica, k.key, slowQuery)
	require.Equal(t, http.StatusOK, second.StatusCode)
	// Both are still running on the hub's ClickHouse: their answers wait.
	hub := hubConn(t)
	for _, r := range []*http.Response{first, second} {
		require.Positive(t, processesOf(t, hub, r.Header.Get(api.HeaderQueryID)), "the unread query runs")
	}

	status, h, raw := callAt(t, replica, k.key, http.MethodPost, "/v1/query", small)
	requireRetryAfter(t, status, h, raw, "too_many_queries", 1)
	status, _, raw = callAt(t, replica, other.key, http.MethodPost, "/v1/query", small)
	require.Equal(t, http.StatusOK, status, "another key's queries count apart: %s", raw)
	status, _, raw = callAt(t, replica, k.key, http.MethodGet, "/v1/queries?limit=1", "")
	require.Equal(t, http.StatusOK, status, "only queries are counted: %s", raw)

	// The client of the first goes away: its query ends, its slot frees.
	require.NoError(t, first.Body.Close())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		status, h, raw := callAt(t, replica, k.key, http.MethodPost, "/v1/query", small)
		if status == http.StatusTooManyRequests {
			requireRetryAfter(t, status, h, raw, "too_many_queries", 1)
			return fmt.Errorf("still two queries: %s", raw)
		}
		require.Equal(t, http.StatusOK, status, string(raw))
		return nil
	}))
	require.NoError(t, second.Body.Close())
	// Both slots free again: two queries at once are served.
	require.NoError(t, pollUntil(ctx, func() error {
		a := openQuery(t, replica, k.key, small)
		b := openQuery(t, replica, k.key, small)
		defer func() { _ = a.Body.Close(); _ = b.Body.Close() }()
		if a.StatusCode != http.StatusOK || b.StatusCode != http.StatusOK {
			return fmt.Errorf("statuses %d and %d", a.StatusCode, b.StatusCode)
		}
		return nil
	}))
}

// rawPost sends a POST of total bytes to the federation's API over a bare
// connection, with Content-Length or chunked, while it reads the answer.
// It returns the answer's status and body, and how many bytes of the body
// the connection took before the server closed it.
func rawPost(t *testing.T, path, key string, total int64, chunked bool) (int, []byte, int64) {
	t.Helper()
	u, err := url.Parse(fed.APIURL)
	require.NoError(t, err)
	var d net.Dialer
	conn, err := d.DialContext(t.Context(), "tcp", u.Host)
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n", path, u.Host, key)
	if chunked {
		head += "Transfer-Encoding: chunked\r\n\r\n"
	} else {
		head += fmt.Sprintf("Content-Length: %d\r\n\r\n", total)
	}
	_, err = io.WriteString(conn, head)
	require.NoError(t, err)
	written := make(chan int64, 1)
	go func() {
		var w io.Writer = conn
		if chunked {
			w = httputil.NewChunkedWriter(conn)
		}
		chunk := bytes.Repeat([]byte(" "), 64<<10)
		var n int64
		for n < total {
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
		}
		written <- n
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	_ = resp.Body.Close()
	select {
	case n := <-written:
		return resp.StatusCode, raw, n
	case <-time.After(20 * time.Second):
		t.Fatal("the server answered but kept reading the body")
	}
	return 0, nil, 0
}

// TestSecBodyCaps: a body over its route's cap is a 413 body_too_large,
// answered before the client could send it: at once when Content-Length
// says so, after the cap when it comes chunked; the server closes the
// connection and reads no more, so the 64 MiB are never taken. A body
// under the cap is read.
func TestSecBodyCaps(t *testing.T) {
	const total = 64 << 20
	for _, tc := range []struct {
		name, path string
		chunked    bool
	}{
		{"query, Content-Length", "/v1/query", false},
		{"query, chunked", "/v1/query", true},
		{"schema sync, Content-Length", "/v1/federation/schema/sync", false},
		{"schema sync, chunked", "/v1/federation/schema/sync", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, raw, written := rawPost(t, tc.path, fed.APIKey, total, tc.chunked)
			requireError(t, http.StatusRequestEntityTooLarge, status, raw, "body_too_large", tc.name)
			t.Logf("%s: the connection took %d of %d bytes", tc.name, written, total)
			require.Less(t, written, int64(total/4), "the server did not read the whole body")
		})
	}
	// 60 KiB of SQL, under the parser's 64 KiB, is answered; 200 KiB, under
	// the body's 256 KiB cap, is read, and refused by the parser (400).
	for _, tc := range []struct {
		size   int
		status int
	}{{60 << 10, http.StatusOK}, {200 << 10, http.StatusBadRequest}} {
		sql := "SELECT count() AS n FROM neuron /* " + strings.Repeat("x", tc.size) + " */"
		body, err := json.Marshal(map[string]string{"sql": sql})
		require.NoError(t, err)
		status, raw := apiDo(t, http.MethodPost, "/v1/query/explain", string(body))
		require.Equal(t, tc.status, status, "a body under the cap is read: %.200s", raw)
	}
}
